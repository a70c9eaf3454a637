import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.kafka import KeyPartitioner, client_kwargs
from shared.settings import ServiceSettings


def test_memoised_partitioning_maps_every_key_as_kafkas_default_partitioner_does() -> None:
    ours, default = KeyPartitioner(max_keys=50), DefaultPartitioner()
    for n in (1, 3, 6, 12):
        partitions = list(range(n))
        for i in range(300):
            key = f"tenant-{i % 7}:rep-{i}".encode()
            assert ours(key, partitions, partitions) == default(key, partitions, partitions)
            assert ours(key, partitions, partitions) == default(key, partitions, partitions)  # from the cache


def test_client_options_carry_sasl_and_tls_from_the_settings(tmp_path: Path) -> None:
    assert client_kwargs(ServiceSettings(kafka_bootstrap_servers="k:9092")) == {"bootstrap_servers": "k:9092"}
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    got = client_kwargs(ServiceSettings(kafka_bootstrap_servers="k:9093", kafka_security_protocol="SASL_SSL",
                                        kafka_sasl_mechanism="SCRAM-SHA-256",
                                        kafka_sasl_username="attain", kafka_sasl_password="pw",  # type: ignore[arg-type]
                                        kafka_ssl_cafile=str(ca)))
    context = got.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    assert got == {"bootstrap_servers": "k:9093", "security_protocol": "SASL_SSL",
                   "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "attain", "sasl_plain_password": "pw"}
