"""One module per `iamguard` subcommand, each with `register(subparsers)`; `common` has the shared AWS flags."""
