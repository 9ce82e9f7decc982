"""Live AWS spot prices from ``describe_spot_price_history`` (boto3), when credentials exist.

The catalogs name AWS zones by zone ID (``use1-az1``); the API answers with zone names
(``us-east-1a``), so each region's names are mapped to IDs with ``describe_availability_zones``.
boto3 is imported here only. Credentials come from boto3's standard chain and are never
logged or stored; errors name the credential source, never a secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from spotrain.errors import SpotrainError


class LivePriceError(SpotrainError):
    pass


@dataclass(frozen=True)
class SpotQuote:
    region: str
    zone_id: str
    zone: str
    instance: str
    price: float
    timestamp: float


def credential_source() -> str | None:
    """The boto3 credential method in use (``env``, ``shared-credentials-file``, ...) or None."""
    try:
        import boto3
    except ImportError:
        return None
    creds = boto3.Session().get_credentials()
    return getattr(creds, "method", "unknown") if creds is not None else None


def fetch(regions: list[str], instance_types: list[str], now: float | None = None) -> list[SpotQuote]:
    """Latest Linux/UNIX spot price per (instance type, zone) in each region."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    now = time.time() if now is None else now
    session = boto3.Session()
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15)
    quotes: dict[tuple, SpotQuote] = {}
    for region in regions:
        ec2 = session.client("ec2", region_name=region, config=cfg)
        try:
            names = {
                z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]
            }
            pages = ec2.get_paginator("describe_spot_price_history").paginate(
                InstanceTypes=instance_types, ProductDescriptions=["Linux/UNIX"], StartTime=now
            )
            for page in pages:
                for item in page["SpotPriceHistory"]:
                    zone = item["AvailabilityZone"]
                    ts = item["Timestamp"].timestamp()
                    key = (item["InstanceType"], zone)
                    if key not in quotes or quotes[key].timestamp < ts:
                        quotes[key] = SpotQuote(
                            region,
                            names.get(zone, zone),
                            zone,
                            item["InstanceType"],
                            float(item["SpotPrice"]),
                            ts,
                        )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise LivePriceError(
                f"AWS {region}: {code or 'error'} reading spot prices with credentials from "
                f"'{credential_source()}' — check that they allow ec2:DescribeSpotPriceHistory"
            ) from None
        except BotoCoreError as exc:
            raise LivePriceError(
                f"AWS {region}: cannot reach the EC2 API ({type(exc).__name__}) — offline? use --no-live"
            ) from None
    return list(quotes.values())


def zone_names(regions: list[str]) -> dict[str, str]:
    """This account's zone name for each zone ID of ``regions`` (``use1-az1`` → ``us-east-1b``):
    AWS maps IDs to names per account, and SkyPilot — given credentials — names zones by name."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15)
    out: dict[str, str] = {}
    session = boto3.Session()
    for region in regions:
        try:
            zones = session.client("ec2", region_name=region, config=cfg).describe_availability_zones()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise LivePriceError(
                f"AWS {region}: {code or 'error'} listing zones with credentials from '{credential_source()}'"
            ) from None
        except BotoCoreError as exc:
            raise LivePriceError(f"AWS {region}: cannot reach the EC2 API ({type(exc).__name__})") from None
        out.update({z["ZoneId"]: z["ZoneName"] for z in zones["AvailabilityZones"]})
    return out
