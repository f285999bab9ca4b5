"""The deployable: template permissions, alarms and settings, the forwarder, the security scan."""
