"""The artifact store: trained models as safetensors + JSON, written atomically, with a manifest
and a training lock per dataset."""
