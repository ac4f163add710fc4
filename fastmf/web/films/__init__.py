"""Films, ratings and recommendations: the pages people use and the JSON API."""
