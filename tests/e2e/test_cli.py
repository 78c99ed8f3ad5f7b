"""The operator commands: `explain` and `check-config`, against the session's configuration."""

from __future__ import annotations

import json
import textwrap

from harness import run_cli


def explain(proxy, pem):
    result = run_cli("explain", "--config", proxy.config_path, "--cert", pem)
    try:
        output = json.loads(result.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(
            f"explain printed no JSON (exit {result.returncode}): {e}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}") from e
    return result.returncode, output


def test_explain_admits_acme_client_into_both_pools(proxy, pki):
    code, out = explain(proxy, pki / "acme-client.pem")

    assert code == 0, out
    for key in ("certificate", "cel", "certificate_authorities", "pools"):
        assert key in out, f"explain output lacks {key}: {sorted(out)}"
    assert out["admitted"] is True
    assert sorted(out["matched_pools"]) == ["pool-acme-all", "pool-payments"]
    assert sorted(out["principals"]) == ["User:pool-acme-all", "User:pool-payments"]
    assert out["identifier"] == {"type": "CN", "value": "acme-client"}
    assert "refusal" not in out


def test_explain_refuses_outsider_because_no_pool_matches(proxy, pki):
    code, out = explain(proxy, pki / "outsider.pem")

    assert code == 1, out
    assert out["admitted"] is False
    assert out["refusal"]["reason"] == "no_pool_matched", out["refusal"]
    assert out["matched_pools"] == [] and out["principals"] == []
    assert out["identifier"] is None


def test_explain_refuses_rogue_certificate_as_untrusted_chain(proxy, pki):
    code, out = explain(proxy, pki / "rogue.pem")

    assert code == 1, out
    assert out["admitted"] is False
    assert out["refusal"]["reason"] == "untrusted_chain", out["refusal"]
    assert out["principals"] == []


def test_check_config_accepts_the_session_configuration(proxy):
    result = run_cli("check-config", "--config", proxy.config_path)
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr


def test_check_config_names_every_broken_field(pki, tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text(textwrap.dedent(f"""\
        listener:
          bootstrap: 127.0.0.1:19999
          advertised_host: localhost
        tls:
          certificate_chain: {pki / "server.pem"}
          private_key: {pki / "server.key"}
        upstream:
          bootstrap_servers: [127.0.0.1:19092]
        certificate_authorities:
          - id: ca-acme
            display_name: Acme Internal Client CA
            certificate_chain: {pki / "acme-internal-client-ca.pem"}
            identity_pools:
              - id: pool-broken-filter
                display_name: Broken filter
                external_identifier: CN
                filter: 'CN =='
              - id: pool-unknown-identifier
                display_name: Unknown identifier
                external_identifier: FAVOURITE_COLOUR
                filter: 'O == "Acme Inc"'
        """))

    result = run_cli("check-config", "--config", config)

    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert all(line.startswith(f"error: {config}: ") for line in errors), result.stderr
    # `error: FILE: FIELD: REASON`: the field is named, for each problem.
    fields = [line[len(f"error: {config}: "):].split(": ", 1)[0] for line in errors]
    assert "certificate_authorities[0].identity_pools[0].filter" in fields, result.stderr
    assert "certificate_authorities[0].identity_pools[1].external_identifier" in fields, (
        result.stderr)
