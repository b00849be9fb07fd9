"""Model manifests, one TOML file per model; installed as the package edgecomplete.manifests."""
