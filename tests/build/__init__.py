"""Tests of the built artifacts (.aws-sam/build), as Lambda would load them."""
