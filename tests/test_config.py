"""Configuration is validated at start-up with a message that names the variable to fix."""

from __future__ import annotations

import json
import re

import pytest

from fhir_vcf import create_app
from fhir_vcf.config import Settings
from fhir_vcf.errors import ConfigError


def test_embedded_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite:///")
    assert settings.policy == "cms-lcd-pva"
    assert settings.allowed_fhir_servers == ()
    assert settings.trusted_issuers is None


def test_environment_values_are_parsed_by_type():
    settings = Settings.from_env(
        {
            "FHIR_VCF_ALLOWED_FHIR_SERVERS": "https://ehr.example.org/fhir/, http://127.0.0.1:9000/fhir",
            "FHIR_VCF_MAX_BODY_BYTES": "1024",
            "FHIR_VCF_FHIR_READ_TIMEOUT": "1.5",
            "FHIR_VCF_DEMO": "yes",
        }
    )
    assert settings.allowed_fhir_servers == ("https://ehr.example.org/fhir", "http://127.0.0.1:9000/fhir")
    assert settings.max_body_bytes == 1024
    assert settings.fhir_read_timeout == 1.5
    assert settings.demo is True


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FHIR_VCF_DEMO", "maybe", "FHIR_VCF_DEMO: expected true or false"),
        ("FHIR_VCF_MAX_BODY_BYTES", "lots", "FHIR_VCF_MAX_BODY_BYTES: expected a whole number"),
        ("FHIR_VCF_MAX_BODY_BYTES", "0", "FHIR_VCF_MAX_BODY_BYTES must be a positive number"),
        ("FHIR_VCF_FHIR_READ_TIMEOUT", "soon", "FHIR_VCF_FHIR_READ_TIMEOUT: expected a number"),
        ("FHIR_VCF_ALLOWED_FHIR_SERVERS", "ftp://x/fhir", "FHIR_VCF_ALLOWED_FHIR_SERVERS: 'ftp://x/fhir' is not"),
        ("FHIR_VCF_PUBLIC_BASE_URL", "cds.example.org", "FHIR_VCF_PUBLIC_BASE_URL: 'cds.example.org' is not"),
        ("FHIR_VCF_DATABASE_URL", "mysql://root@localhost/x", "FHIR_VCF_DATABASE_URL: unsupported database"),
        ("FHIR_VCF_TRUSTED_ISSUERS", "/nonexistent/issuers.json", "FHIR_VCF_TRUSTED_ISSUERS: no such file"),
        ("FHIR_VCF_SMART_CLIENT_ID", "client-1", "FHIR_VCF_SMART_CLIENT_ID needs FHIR_VCF_SMART_TOKEN_URL"),
        ("FHIR_VCF_SMART_ALGORITHM", "HS256", "FHIR_VCF_SMART_ALGORITHM: 'HS256' is not one of RS384, ES384"),
        ("FHIR_VCF_JTI_CACHE", "redis", "FHIR_VCF_JTI_CACHE: expected memory or database, got 'redis'"),
    ],
)
def test_a_bad_value_names_the_variable(variable, value, message):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    assert message in str(caught.value)


def test_jti_cache_setting():
    assert Settings.from_env({}).jti_cache is None  # unset: memory, or database under a multi-worker serve
    assert Settings.from_env({"FHIR_VCF_JTI_CACHE": "memory"}).jti_cache == "memory"
    assert Settings.from_env({"FHIR_VCF_JTI_CACHE": "database"}).jti_cache == "database"
    with pytest.raises(ConfigError, match="FHIR_VCF_JTI_CACHE"):
        Settings().updated({"jti_cache": "Database"})


def test_trusted_issuers_file_must_name_a_key_source(tmp_path):
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"https://ehr.example.org": {"audience": "x"}}))
    with pytest.raises(ConfigError, match=re.escape("issuer 'https://ehr.example.org' needs 'jwks_url' or 'jwks'")):
        Settings.from_env({"FHIR_VCF_TRUSTED_ISSUERS": str(path)})
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="is not a readable JSON file"):
        Settings.from_env({"FHIR_VCF_TRUSTED_ISSUERS": str(path)})


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings().updated({"databse_url": "sqlite://"})


def test_the_app_refuses_an_unknown_default_policy(tmp_path):
    with pytest.raises(ConfigError, match="FHIR_VCF_POLICY: unknown policy 'no-such-policy'"):
        create_app({"database_url": f"sqlite:///{tmp_path}/db.sqlite", "policy": "no-such-policy"})
