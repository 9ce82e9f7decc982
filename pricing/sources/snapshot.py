"""A small built-in price snapshot so spotrain plans offline on first run, before any catalog
is present. Written by the spotrain authors from the clouds' public list prices (approximate,
one representative region each); spot prices are typical observed discounts and move daily.
Any real catalog replaces these rows."""

from __future__ import annotations

from datetime import datetime, timezone

AS_OF = datetime(2026, 5, 1, tzinfo=timezone.utc).timestamp()
DATE = "2026-05-01"

# cloud, region, instance, accelerator, count, vCPUs, memory GiB, on-demand $/h, spot $/h (None = no spot)
ROWS: list[tuple] = [
    ("aws", "us-east-1", "g4dn.xlarge", "T4", 1, 4, 16, 0.526, 0.2104),
    ("aws", "us-east-1", "g4dn.12xlarge", "T4", 4, 48, 192, 3.912, 1.5648),
    ("aws", "us-east-1", "g5.xlarge", "A10G", 1, 4, 16, 1.006, 0.4024),
    ("aws", "us-east-1", "g5.2xlarge", "A10G", 1, 8, 32, 1.212, 0.4848),
    ("aws", "us-east-1", "g5.12xlarge", "A10G", 4, 48, 192, 5.672, 2.2688),
    ("aws", "us-east-1", "g5.48xlarge", "A10G", 8, 192, 768, 16.288, 6.5152),
    ("aws", "us-east-1", "g6.xlarge", "L4", 1, 4, 16, 0.8048, 0.3219),
    ("aws", "us-east-1", "g6.12xlarge", "L4", 4, 48, 192, 4.6016, 1.8406),
    ("aws", "us-east-1", "g6e.xlarge", "L40S", 1, 4, 32, 1.861, 0.7444),
    ("aws", "us-east-1", "g6e.12xlarge", "L40S", 4, 48, 384, 10.493, 4.1972),
    ("aws", "us-east-1", "p3.2xlarge", "V100", 1, 8, 61, 3.06, 0.9731),
    ("aws", "us-east-1", "p3.8xlarge", "V100", 4, 32, 244, 12.24, 3.8924),
    ("aws", "us-east-1", "p4d.24xlarge", "A100", 8, 96, 1152, 21.96, 8.784),
    ("aws", "us-east-1", "p4de.24xlarge", "A100-80GB", 8, 96, 1152, 27.447, 10.979),
    ("aws", "us-east-1", "p5.4xlarge", "H100", 1, 16, 256, 6.88, None),
    ("aws", "us-east-1", "p5.48xlarge", "H100", 8, 192, 2048, 55.04, 22.016),
    ("gcp", "us-central1", "n1-highmem-4", "T4", 1, 4, 26, 0.587, 0.199),
    ("gcp", "us-central1", "n1-highmem-8", "V100", 1, 8, 52, 2.953, 1.031),
    ("gcp", "us-central1", "g2-standard-4", "L4", 1, 4, 16, 0.7068, 0.2827),
    ("gcp", "us-central1", "g2-standard-48", "L4", 4, 48, 192, 4.0014, 1.6006),
    ("gcp", "us-central1", "a2-highgpu-1g", "A100", 1, 12, 85, 3.6731, 1.4692),
    ("gcp", "us-central1", "a2-highgpu-8g", "A100", 8, 96, 680, 29.3847, 11.7539),
    ("gcp", "us-central1", "a2-ultragpu-1g", "A100-80GB", 1, 12, 170, 5.0688, 2.0275),
    ("gcp", "us-central1", "a2-ultragpu-8g", "A100-80GB", 8, 96, 1360, 40.5503, 16.2201),
    ("gcp", "us-central1", "a3-highgpu-1g", "H100", 1, 26, 234, 11.0613, 4.4245),
    ("gcp", "us-central1", "a3-highgpu-8g", "H100", 8, 208, 1872, 88.4901, 35.396),
    ("azure", "eastus", "Standard_NC4as_T4_v3", "T4", 1, 4, 28, 0.526, 0.2104),
    ("azure", "eastus", "Standard_NV36ads_A10_v5", "A10", 1, 36, 440, 3.2, 1.28),
    ("azure", "eastus", "Standard_NC24ads_A100_v4", "A100-80GB", 1, 24, 220, 3.673, 1.4692),
    ("azure", "eastus", "Standard_NC96ads_A100_v4", "A100-80GB", 4, 96, 880, 14.692, 5.8768),
    ("azure", "eastus", "Standard_ND96asr_v4", "A100", 8, 96, 900, 27.197, 10.8788),
    ("azure", "eastus", "Standard_NC40ads_H100_v5", "H100", 1, 40, 320, 6.98, 2.792),
    ("azure", "eastus", "Standard_ND96isr_H100_v5", "H100", 8, 96, 1900, 98.32, 39.328),
    ("lambda", "us-east-1", "gpu_1x_a10", "A10", 1, 30, 200, 0.75, None),
    ("lambda", "us-east-1", "gpu_1x_a100_sxm4", "A100", 1, 30, 200, 1.29, None),
    ("lambda", "us-east-1", "gpu_8x_a100_80gb_sxm4", "A100-80GB", 8, 240, 1800, 14.32, None),
    ("lambda", "us-east-1", "gpu_1x_h100_pcie", "H100", 1, 26, 200, 2.49, None),
    ("lambda", "us-east-1", "gpu_8x_h100_sxm5", "H100", 8, 208, 1800, 23.92, None),
    ("runpod", "US", "1x_A100-80GB_SECURE", "A100-80GB", 1, 8, 117, 1.64, None),
    ("runpod", "US", "1x_H100_SECURE", "H100", 1, 16, 125, 2.69, None),
    # CPU-only machines (small jobs, CPU recipes)
    ("aws", "us-east-1", "m6i.large", "", 0, 2, 8, 0.096, 0.0384),
    ("aws", "us-east-1", "m6i.xlarge", "", 0, 4, 16, 0.192, 0.0768),
    ("aws", "us-east-1", "c6i.2xlarge", "", 0, 8, 16, 0.34, 0.136),
    ("aws", "us-east-1", "m6i.4xlarge", "", 0, 16, 64, 0.768, 0.3072),
    ("gcp", "us-central1", "n2-standard-4", "", 0, 4, 16, 0.1942, 0.0475),
    ("gcp", "us-central1", "n2-standard-8", "", 0, 8, 32, 0.3885, 0.095),
    ("azure", "eastus", "Standard_D4s_v5", "", 0, 4, 16, 0.192, 0.0384),
    ("azure", "eastus", "Standard_D8s_v5", "", 0, 8, 32, 0.384, 0.0768),
]


def rows() -> list[tuple]:
    return [
        (
            c,
            r,
            "",
            i,
            a,
            float(n),
            float(v),
            float(m),
            p,
            float("nan") if s is None else s,
            f"snapshot {DATE}",
            AS_OF,
        )
        for c, r, i, a, n, v, m, p, s in ROWS
    ]
