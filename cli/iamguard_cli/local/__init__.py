"""The local runtime: moto standing in for AWS, with the gaps iamguard needs filled in."""
