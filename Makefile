# iamguard - build, test and demo entry points (see README.md).
#
#   make demo      the whole system on this machine: no AWS account, no Docker
#   make demo-org  the same for an organization: a new account joins and is watched from the hub
#   make test      lint + typecheck + cfn-lint + sam validate + sam build + pytest
#
# Three virtual environments, each rebuilt only when its requirement file changes:
#   .venv          the iamguard package (editable) with its dev/test tools  <- pyproject.toml
#   .venv-sam      aws-sam-cli, which pins its own boto3/click               <- requirements-sam.txt
#   .venv-checkov  checkov (IaC security scan), which pins many deps         <- requirements-checkov.txt
# and .venv-lambda: what Lambda adds to the built artifacts (the runtime's boto3, the
# public Powertools layer), pip-installed for the Lambda Python       <- tests/build/*.txt

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_SAM := .venv-sam
VENV_CHECKOV := .venv-checkov
VENV_LAMBDA := .venv-lambda
VENV_STAMP := $(VENV)/.iamguard-installed.stamp
SAM_STAMP := $(VENV_SAM)/.sam-installed.stamp
CHECKOV_STAMP := $(VENV_CHECKOV)/.checkov-installed.stamp
LAMBDA_STAMP := $(VENV_LAMBDA)/.lambda-installed.stamp
BIN := $(VENV)/bin
SAM := $(VENV_SAM)/bin/sam
PYTEST := $(BIN)/pytest
CHECKOV := $(VENV_CHECKOV)/bin/checkov
# Every CloudFormation template in the repository: the stack, the sign-in forwarder, the member stack.
TEMPLATES := template.yaml forwarder/signin-forwarder.yaml member/template.yaml

# Lambda runtime of template.yaml: `sam build` needs exactly this interpreter on PATH.
LAMBDA_PYTHON := python3.12
LAMBDA_PYTHON_VERSION := $(patsubst python%,%,$(LAMBDA_PYTHON))

# Directories ruff looks at (those that exist: git does not keep empty ones).
CODE_DIRS := $(wildcard layers cli functions tests bench)

# SAM CLI: no telemetry, a region, never the EC2 metadata service. validate --lint
# and build need no AWS credentials and make no AWS calls (checked offline).
export SAM_CLI_TELEMETRY := 0
export AWS_EC2_METADATA_DISABLED := true
SAM_ENV := AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} \
	AWS_REGION=$${AWS_REGION:-$${AWS_DEFAULT_REGION:-us-east-1}}

# Directory of a working $(LAMBDA_PYTHON): the one on PATH if it runs (a pyenv shim
# only runs when that version is active), else pyenv's newest 3.12.x, else the system's.
# Evaluated only by the recipes that use it.
LAMBDA_PYTHON_DIR = $(shell \
	for exe in $(LAMBDA_PYTHON) \
	    $$(ls -1d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/$(LAMBDA_PYTHON_VERSION).*/bin/$(LAMBDA_PYTHON) 2>/dev/null | sort -rV) \
	    /usr/local/bin/$(LAMBDA_PYTHON) /usr/bin/$(LAMBDA_PYTHON); do \
	  real=$$("$$exe" -c 'import sys; print(sys.executable)' 2>/dev/null) && [ -n "$$real" ] \
	    && "$$real" -m pip --version >/dev/null 2>&1 && { dirname "$$real"; break; }; \
	done)

.PHONY: help
help:
	@echo "make demo        run iamguard locally (LANGUAGE=en|ko)"
	@echo "make demo-org    the organization walkthrough: a new member account, an admin without MFA in it"
	@echo "make test        lint, typecheck, cfn-lint, sam-validate, checkov, build, all tests"
	@echo "make lint | typecheck | cfn-lint | sam-validate | checkov | build | unit | integration | pytest"
	@echo "make format      apply ruff format and safe ruff fixes"
	@echo "make bench       benchmarks against Prowler and Cloud Custodian (about an hour); bench-report regenerates bench/RESULTS.md"
	@echo "make bench-org   the organization audit end to end on moto (100 accounts x 200 users) and the 100 x 2,000 model"
	@echo "make .venv | .venv-sam | .venv-checkov | lambda-env   create the environments"
	@echo "make browser     Debian's chromium + chromium-driver for the HTML report's browser test"
	@echo "make clean       remove build output and caches; distclean also the venvs"

# ------------------------------------------------------------------ environments
.PHONY: .venv .venv-sam .venv-checkov lambda-env
.venv: $(VENV_STAMP)
.venv-sam: $(SAM_STAMP)
.venv-checkov: $(CHECKOV_STAMP)
lambda-env: $(LAMBDA_STAMP)

$(VENV_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

$(SAM_STAMP): requirements-sam.txt
	$(PYTHON) -m venv $(VENV_SAM)
	$(VENV_SAM)/bin/python -m pip install --upgrade pip
	$(VENV_SAM)/bin/python -m pip install -r requirements-sam.txt
	$(SAM) --version
	touch $@

$(CHECKOV_STAMP): requirements-checkov.txt
	$(PYTHON) -m venv $(VENV_CHECKOV)
	$(VENV_CHECKOV)/bin/python -m pip install --upgrade pip
	$(VENV_CHECKOV)/bin/python -m pip install -r requirements-checkov.txt
	$(CHECKOV) --version
	touch $@

# Two `pip --target` directories for the smoke test of the built artifacts
# (tests/build): runtime/ = the Lambda runtime's boto3, powertools/ = the public
# Powertools layer. Installed for $(LAMBDA_PYTHON) (else the default python3, said
# loudly); .venv-lambda/python records which interpreter they are for.
$(LAMBDA_STAMP): tests/build/lambda-runtime.txt tests/build/powertools-layer.txt
	dir='$(LAMBDA_PYTHON_DIR)'; py="$$dir/$(LAMBDA_PYTHON)"; \
	if [ -z "$$dir" ]; then \
	  py=$$(command -v $(PYTHON)); echo "warning: no $(LAMBDA_PYTHON); the smoke test uses $$py" >&2; \
	fi; \
	rm -rf $(VENV_LAMBDA); \
	for part in runtime:lambda-runtime powertools:powertools-layer; do \
	  "$$py" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
	    --target $(VENV_LAMBDA)/$${part%%:*} -r tests/build/$${part#*:}.txt; \
	done; \
	"$$py" -c 'import sys; print(sys.executable)' > $(VENV_LAMBDA)/python
	touch $@

# ------------------------------------------------------------------ checks
.PHONY: lint format typecheck cfn-lint sam-validate checkov build
lint: $(VENV_STAMP)
	$(BIN)/ruff check $(CODE_DIRS)
	$(BIN)/ruff format --check $(CODE_DIRS)

format: $(VENV_STAMP)
	$(BIN)/ruff format $(CODE_DIRS)
	$(BIN)/ruff check --fix $(CODE_DIRS)

# Settings from [tool.mypy] in pyproject.toml. The package and every handler in one
# run: explicit_package_bases names them functions.<name>.app, so the app.py files
# do not clash.
typecheck: $(VENV_STAMP)
	$(BIN)/mypy layers/iamguard/iamguard cli/iamguard_cli $(wildcard functions/*/app.py)

cfn-lint: $(VENV_STAMP)
	$(BIN)/cfn-lint $(TEMPLATES)

sam-validate: $(SAM_STAMP)
	$(SAM_ENV) $(SAM) validate --lint --template-file template.yaml

# Security scan of the templates, offline (settings and the account-wide suppressions,
# each with its reason, in .checkov.yaml). Without an API key checkov knows no
# severities, so any failed check fails the target. Where a network namespace can be
# made (unshare -n, as root), it runs without any network, proving it needs none.
checkov: $(CHECKOV_STAMP)
	offline=$$(unshare -n true 2>/dev/null && echo "unshare -n"); \
	BC_SKIP_MAPPING=TRUE $$offline $(CHECKOV) --config-file .checkov.yaml $(addprefix -f ,$(TEMPLATES))

build: $(SAM_STAMP)
	dir='$(LAMBDA_PYTHON_DIR)'; \
	if [ -z "$$dir" ]; then \
	  echo "error: sam build needs $(LAMBDA_PYTHON) (with pip); none found on PATH or in pyenv." >&2; \
	  echo "       install it, e.g. 'pyenv install $(LAMBDA_PYTHON_VERSION)'" >&2; \
	  exit 1; \
	fi; \
	echo "sam build with $$dir/$(LAMBDA_PYTHON)"; \
	PATH="$$dir:$$PATH" $(SAM_ENV) $(SAM) build --template-file template.yaml

# ------------------------------------------------------------------ browser
# The HTML report's browser test (tests/e2e/test_report_browser.py) drives Debian's Chromium through
# its chromedriver. Installed here from the system packages when missing (as root, else with sudo);
# when that cannot be done the target fails: the browser test is never skipped.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: browser
browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then \
	  echo "browser: $$($(CHROMEDRIVER) --version | cut -d' ' -f1-2) at $(CHROMEDRIVER), $(CHROMIUM)"; exit 0; \
	fi; \
	if ! command -v apt-get >/dev/null; then \
	  echo "error: the browser test needs $(CHROMIUM) and $(CHROMEDRIVER) (Debian: chromium, chromium-driver);" \
	    "no apt-get here to install them" >&2; exit 1; \
	fi; \
	sudo=; if [ "$$(id -u)" != 0 ]; then sudo="sudo -n"; fi; \
	echo "browser: installing chromium and chromium-driver with apt-get"; \
	$$sudo apt-get update -q || echo "warning: apt-get update failed; trying the install with the lists at hand" >&2; \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q chromium chromium-driver || { \
	  echo "error: apt-get could not install chromium and chromium-driver, which the browser test needs" >&2; exit 1; }; \
	[ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ] || { \
	  echo "error: installed, but $(CHROMIUM) or $(CHROMEDRIVER) is still missing" >&2; exit 1; }

# ------------------------------------------------------------------ tests
# pytest exits 5 when it collects no test: that fails the build like any error.
.PHONY: test pytest unit integration
test: lint typecheck cfn-lint sam-validate checkov build lambda-env pytest

pytest: $(VENV_STAMP) browser
	$(PYTEST)

unit: $(VENV_STAMP)
	$(PYTEST) tests/unit

integration: $(VENV_STAMP)
	$(PYTEST) tests/integration

# ------------------------------------------------------------------ demo
# LANGUAGE from the command line is passed as given; from the environment only when
# it is en or ko (gettext's LANGUAGE, e.g. en_US:en, is not ours).
LANGUAGE ?=
DEMO_LANGUAGE = $(if $(filter command line,$(origin LANGUAGE)),$(LANGUAGE),$(filter en ko,$(LANGUAGE)))

.PHONY: demo demo-org
demo: $(VENV_STAMP)
	$(BIN)/iamguard demo $(if $(DEMO_LANGUAGE),--language $(DEMO_LANGUAGE))

demo-org: $(VENV_STAMP)
	$(BIN)/iamguard demo --organization $(if $(DEMO_LANGUAGE),--language $(DEMO_LANGUAGE))

# ------------------------------------------------------------------ benchmarks
# Not part of make test (the peers at 30 ms per request take most of an hour). Raw results
# in bench/results/*.json; bench/RESULTS.md and README.md's performance table are generated
# from them (bench-report regenerates them without measuring). audit_users.py measures both
# account shapes under both network models (moto, moto + 30 ms per request); the peers run
# at 2,000 users, iamguard alone at 10,000 (bench/README.md says why).
.PHONY: bench bench-report bench-org
bench: $(VENV_STAMP)
	bash bench/setup_peers.sh
	$(BIN)/python bench/audit_users.py --users 2000 --profile
	$(BIN)/python bench/audit_users.py --users 10000 --peers '' --repeat 3
	$(BIN)/python bench/audit_profile.py --users 2000 --shape current
	$(BIN)/python bench/audit_profile.py --users 2000 --shape never-signed-in
	$(BIN)/python bench/status_reads.py --users 10000
	$(BIN)/python bench/event_path.py
	$(BIN)/python bench/audit_memory.py --users 10000
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/report.py --write

bench-report: $(VENV_STAMP)
	$(BIN)/python bench/report.py --write

# Organization mode (issue #14): 10, 30 and 100 member accounts of 200 users through the real planner and
# audit function (SQS fan-out), one 2,000-user account at 0 and 30 ms per request, then RESULTS.md.
bench-org: $(VENV_STAMP)
	$(BIN)/python bench/org_audit.py
	$(BIN)/python bench/org_model.py
	$(BIN)/python bench/report.py --write

# ------------------------------------------------------------------ cleanup
.PHONY: clean distclean
clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
	find . -path ./$(VENV) -prune -o -path ./$(VENV_SAM) -prune -o -path ./$(VENV_CHECKOV) -prune -o \
	  -path ./$(VENV_LAMBDA) -prune -o -path ./.git -prune -o \
	  -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(VENV_SAM) $(VENV_CHECKOV) $(VENV_LAMBDA)
