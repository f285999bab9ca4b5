"""Summarise bench/results/*.json as the Markdown tables of bench/RESULTS.md.

    .venv/bin/python bench/report.py            # print the tables
    .venv/bin/python bench/report.py --sizes 2000,10000

It only reads the recorded results; it measures nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import benchlib


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def audit_section(result: dict[str, Any]) -> str:
    n = result["users"]
    cli = result["iamguard_cli"]
    runs = cli["runs"]
    cpu = sorted(r["user_cpu_seconds"] + r["system_cpu_seconds"] for r in runs)[len(runs) // 2]
    server = cli.get("server_cpu_seconds_median")
    cli_total_cpu = cpu + server if server is not None else None
    rows = [
        [
            f"iamguard audit --format json, CLI (median of {len(runs)})",
            _spread(cli),
            "1",
            f"{cpu:.2f}",
            _server_cpu(cli.get("server_cpu_seconds_median")),
            "1",
            f"{cli['peak_rss_mb_max']:.0f}",
            cli["api_calls"],
            ",".join(str(c) for c in cli["exit_codes"]),
        ]
    ]
    lam = result.get("iamguard_run_audit")
    if lam:
        lam_runs = lam["runs"]
        lam_cpu = sorted(r["user_cpu_seconds"] + r["system_cpu_seconds"] for r in lam_runs)[len(lam_runs) // 2]
        rows.append(
            [
                f"iamguard run_audit only, fresh process: read + checks, no report (median of {len(lam_runs)})",
                _spread(lam),
                f"{lam['wall_seconds_median'] / cli['wall_seconds_median']:.2f}",
                f"{lam_cpu:.2f}",
                _server_cpu(lam.get("server_cpu_seconds_median")),
                _cpu_ratio(lam_cpu, lam.get("server_cpu_seconds_median"), cli_total_cpu),
                f"{lam['peak_rss_mb_max']:.0f}",
                lam["api_calls"],
                ",".join(str(c) for c in lam["exit_codes"]),
            ]
        )
    for name, label in (("prowler", "Prowler `--service iam`"), ("custodian", "Cloud Custodian, 5 iam-user policies")):
        peer = result["peers"].get(name)
        if not peer:
            continue
        if "skipped" in peer:
            rows.append([label, "skipped: " + peer["skipped"], "", "", "", "", "", "", ""])
            continue
        rows.append(
            [
                f"{label} ({peer.get('version', '?')})",
                f"{peer['wall_seconds']:.1f}" + (" (timed out)" if peer.get("timed_out") else ""),
                f"{peer.get('ratio_to_iamguard', '?')}",
                f"{peer['user_cpu_seconds'] + peer['system_cpu_seconds']:.1f}",
                _server_cpu(peer.get("extra", {}).get("server_cpu_seconds")),
                _cpu_ratio(
                    peer["user_cpu_seconds"] + peer["system_cpu_seconds"],
                    peer.get("extra", {}).get("server_cpu_seconds"),
                    cli_total_cpu,
                ),
                f"{peer['peak_rss_mb']:.0f}",
                peer["api_calls"],
                peer["exit_code"],
            ]
        )
    out = [f"### {n:,} users", ""]
    out.append(
        table(
            [
                "tool",
                "wall s",
                "x iamguard CLI",
                "CPU s (user+sys)",
                "moto server CPU s",
                "x iamguard CLI, CPU (tool + server)",
                "peak RSS MB",
                "API calls",
                "exit",
            ],
            rows,
        )
    )
    phases = result["iamguard_in_process"]["phases_seconds"]
    out += [
        "",
        "iamguard in-process (same code as `run_audit`, one run): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items())
        + f"; report {result['iamguard_in_process']['report_bytes'] / 1e6:.1f} MB, "
        f"{result['iamguard_in_process']['findings']:,} findings.",
        "",
        "iamguard API calls by operation (counted by the server): "
        + ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in cli["api_calls_by_operation"].items())
        + ".",
    ]
    for name in ("prowler", "custodian"):
        peer = result["peers"].get(name)
        if peer and "api_calls_by_operation" in peer:
            top = list(peer["api_calls_by_operation"].items())[:8]
            out.append(
                "",
            )
            out.append(
                f"{name} API calls, top operations: " + ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in top) + "."
            )
    seed = result["seeding"]
    out += [
        "",
        f"Seeding: {seed['iam_calls']:,} IAM calls in {seed['seconds']} s; load average (1 min) at start "
        f"{result['machine'].get('load_avg_1m', '?')}.",
    ]
    return "\n".join(out)


def _spread(runs: dict[str, Any]) -> str:
    return "{wall_seconds_median:.2f} (min {wall_seconds_min:.2f}, max {wall_seconds_max:.2f})".format(**runs)


def _cpu_ratio(tool: float, server: float | None, reference: float | None) -> str:
    if server is None or not reference:
        return "-"
    return f"{(tool + server) / reference:.1f}"


def _server_cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def verification_section(results: list[dict[str, Any]]) -> str:
    header = ["check"] + [f"{r['users']:,} users: expected FAIL/EXEMPT → reported" for r in results]
    by_check: dict[str, list[str]] = {}
    for result in results:
        for check in result["verification"]["checks"]:
            want, got = check["expected"], check["reported"]
            cell = f"{want['FAIL']}/{want['EXEMPT']} → {got['FAIL']}/{got['EXEMPT']} {'✓' if check['ok'] else '✗'}"
            by_check.setdefault(check["check_id"], []).append(cell)
    rows = [[check, *cells] for check, cells in by_check.items()]
    rows.append(
        [
            "GetLoginProfile calls (never-signed-in console users without ChangePassword)",
            *[
                f"{r['verification']['get_login_profile_calls']['expected']} → "
                f"{r['verification']['get_login_profile_calls']['made']}"
                for r in results
            ],
        ]
    )
    rows.append(["users in the report", *[f"{r['users']} → {r['verification']['users_reported']}" for r in results]])
    return table(header, rows)


def peers_agreement_section(results: list[dict[str, Any]]) -> str:
    rows = []
    for result in results:
        expected = {c["check_id"]: c["expected"] for c in result["verification"]["checks"]}
        prowler = result["peers"].get("prowler", {}).get("comparable", {})
        custodian = result["peers"].get("custodian", {}).get("comparable", {})
        console = expected["user_console_mfa"]
        two_keys = expected["user_single_active_key"]
        rows.append(
            [
                f"{result['users']:,}",
                f"{console['FAIL'] + console['EXEMPT']}",
                prowler.get("iam_user_mfa_enabled_console_access", {}).get("FAIL", "-"),
                custodian.get("iam-user-console-without-mfa", {}).get("matched", "-"),
                f"{two_keys['FAIL'] + two_keys['EXEMPT']}",
                prowler.get("iam_user_two_active_access_key", {}).get("FAIL", "-"),
                expected["user_unused_credentials"]["FAIL"] + expected["user_unused_credentials"]["EXEMPT"],
                custodian.get("iam-user-password-unused-45-days", {}).get("matched", "-"),
            ]
        )
    return table(
        [
            "users",
            "console w/o MFA: iamguard (FAIL+EXEMPT)",
            "Prowler",
            "Custodian",
            "two active keys: iamguard",
            "Prowler",
            "password unused 45+ days: iamguard",
            "Custodian",
        ],
        rows,
    )


def profile_section(result: dict[str, Any]) -> str:
    profile = result.get("profile")
    if not profile:
        return ""
    client = profile["client"]
    rows = [[label, f"{share * 100:.0f} %"] for label, share in client["share_by_category"].items()]
    out = [
        f"CLI audit of {result['users']:,} users under py-spy (wall {profile['cli_run']['wall_seconds']:.2f} s with "
        f"sampling, {client['samples']} samples incl. idle):",
        "",
        table(["where the CLI's wall time goes", "share"], rows),
        "",
        "Busiest server (moto) functions, self time share of samples: "
        + ", ".join(f"{k} {v * 100:.0f} %" for k, v in list(profile["server"]["top_self"].items())[:8])
        + ".",
    ]
    return "\n".join(out)


def cold_start_section(path: Path) -> str:
    if not path.exists():
        return ""
    data = load(path)
    rows = []
    for name, handler in data["handlers"].items():
        if "error" in handler:
            rows.append([f"functions/{name}", "error: " + handler["error"], "", "", "", ""])
            continue
        heavy = ", ".join(
            f"{k} {v:.0f}" for k, v in list(handler["heaviest_imports"]["top_level_cumulative_ms"].items())[:5]
        )
        rows.append(
            [
                f"functions/{name}",
                "{median:.0f} ({min:.0f}-{max:.0f})".format(**handler["import_ms"]),
                f"{handler['process_ms']['median']:.0f}",
                f"{handler['peak_rss_mb']:.0f}",
                handler["modules_loaded"],
                heavy,
            ]
        )
    bare = data["bare_interpreter_process_ms"]["median"]
    return "\n".join(
        [
            table(
                [
                    "handler",
                    "import ms, median (min-max)",
                    "process ms (start-up + import)",
                    "peak RSS MB",
                    "modules",
                    "heaviest imports of app.py, cumulative ms",
                ],
                rows,
            ),
            "",
            f"A bare `python -c pass` takes {bare:.0f} ms here. Command: `{data['command']}`.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="comma-separated user counts (default: every results/audit_users-N.json)")
    args = parser.parse_args(argv)
    paths = sorted(benchlib.RESULTS.glob("audit_users-*.json"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    if args.sizes:
        wanted = {int(size) for size in args.sizes.split(",")}
        paths = [p for p in paths if int(p.stem.rsplit("-", 1)[1]) in wanted]
    results = [load(p) for p in paths]
    sections = []
    for result in results:
        sections.append(audit_section(result))
        sections.append(f"Command: `{result['command']}`")
    if results:
        sections += ["### Correctness: findings against the seeded account", verification_section(results)]
        sections += ["### Peers' counts of the same problems", peers_agreement_section(results)]
        for result in results:
            if result.get("profile"):
                sections += [f"### Profile, {result['users']:,} users", profile_section(result)]
    cold = cold_start_section(benchlib.RESULTS / "cold_start.json")
    if cold:
        sections += ["### Cold start: handler import cost", cold]
    print("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
