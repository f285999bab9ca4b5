"""The `iamguard` command line and the local runtime — never deployed to Lambda.

`main` parses the command line; `commands/` holds one module per subcommand; `local/` is the
runtime that runs the whole bot on this machine on moto (`iamguard local`, `iamguard demo`);
`mfa` enrolls virtual MFA devices with pyotp. Imports the core package `iamguard`; the core
never imports this package (tests/unit/test_architecture.py, and the built-layer test).
"""
