#!/usr/bin/env bash
# Deploys forwarder/signin-forwarder.yaml as a stack in every region enabled for this account
# except the main one, or deletes those stacks with --delete. One command, every region: an IAM
# user can sign in through any regional sign-in endpoint, and the event stays in that region.
#
#   forwarder/deploy-all-regions.sh            # deploy or update everywhere
#   forwarder/deploy-all-regions.sh --delete   # remove everywhere
#
# Environment: MAIN_REGION (default us-east-1, where iamguard runs), STACK_NAME (default
# iamguard-signin-forwarder), TARGET_EVENT_BUS_ARN (optional, see the template). The AWS CLI
# uses your shell's credentials (AWS_PROFILE, ...). A region that fails does not stop the
# others; the script lists the failed regions and exits 1. Run it again after enabling a region.
set -euo pipefail

MAIN_REGION="${MAIN_REGION:-us-east-1}"
STACK_NAME="${STACK_NAME:-iamguard-signin-forwarder}"
TEMPLATE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/signin-forwarder.yaml"

case "${1:-}" in
  "") action=deploy ;;
  --delete) action=delete ;;
  -h | --help)
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [--delete]" >&2
    exit 2
    ;;
esac

# DescribeRegions lists the regions enabled for the account (opt-in regions once opted in).
regions="$(aws ec2 describe-regions --region "$MAIN_REGION" --query 'Regions[].RegionName' --output text)"
if [ -z "${regions//[[:space:]]/}" ]; then
  echo "aws ec2 describe-regions returned no regions: nothing done" >&2
  exit 1
fi

parameters=("MainRegion=$MAIN_REGION")
if [ -n "${TARGET_EVENT_BUS_ARN:-}" ]; then
  parameters+=("TargetEventBusArn=$TARGET_EVENT_BUS_ARN")
fi

# Plain strings, not arrays: macOS still ships bash 3.2, where empty arrays trip `set -u`.
done_in=""
failed=""
for region in $regions; do
  if [ "$region" = "$MAIN_REGION" ]; then
    continue # iamguard's own rule receives the sign-ins recorded here
  fi
  echo "== $action $STACK_NAME in $region"
  if [ "$action" = deploy ]; then
    if aws cloudformation deploy --region "$region" --stack-name "$STACK_NAME" \
      --template-file "$TEMPLATE" --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
      --parameter-overrides "${parameters[@]}"; then
      done_in="$done_in $region"
    else
      failed="$failed $region"
    fi
  else
    if aws cloudformation delete-stack --region "$region" --stack-name "$STACK_NAME" &&
      aws cloudformation wait stack-delete-complete --region "$region" --stack-name "$STACK_NAME"; then
      done_in="$done_in $region"
    else
      failed="$failed $region"
    fi
  fi
done

echo "$action done in:${done_in:- no region}"
if [ -n "$failed" ]; then
  echo "$action FAILED in:$failed" >&2
  exit 1
fi
