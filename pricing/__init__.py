"""Price catalogs, offers, cost math and forecasts (built by the pricing issue)."""
