"""The edge daemon: settings, the capture → inference → decision → publish pipeline, health, systemd."""
