"""iamguard: serverless IAM enforcement for one AWS account."""

__version__ = "0.1.0"
