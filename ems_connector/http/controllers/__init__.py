"""One controller per resource of the /3.1 API, plus health and the OpenAPI document."""
