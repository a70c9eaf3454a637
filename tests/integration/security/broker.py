"""A second, throw-away Kafka broker that only speaks securely: SASL_SSL (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512) and SSL with client certificates, with a CA, broker and client certificates made here.

It runs the same pinned jars as the local stack (deploy/local/kafka_setup.py) on ports of its own and a
data folder of its own under .local/, so the main broker the rest of the suite uses is not touched.
Its one plaintext listener is the inter-broker one the single KRaft node needs; clients are never
given it (each listener advertises only itself).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deploy.local.kafka_setup import format_storage, jvm_args, new_cluster_id, toolchain
from deploy.local.procs import HOST, LOCAL
from tests.ports import free_ports

# One user per mechanism: the broker knows PLAIN users from its JAAS line, SCRAM users from the
# credentials `kafka-storage format --add-scram` writes into the cluster metadata.
USERS = {"PLAIN": ("attain-plain", "plain-secret"), "SCRAM-SHA-256": ("attain-256", "scram-256-secret"),
         "SCRAM-SHA-512": ("attain-512", "scram-512-secret")}
PROTOCOLS = ("SASL_SSL", "SSL")


@dataclass(frozen=True)
class SecureBroker:
    folder: Path
    sasl_ssl_port: int
    ssl_port: int
    ca_file: Path
    client_cert: Path
    client_key: Path

    def env(self, protocol: str, mechanism: str | None = None, password: str | None = None) -> dict[str, str]:
        """The environment a service needs to reach this broker with `protocol` (and `mechanism`)."""
        if protocol == "SSL":
            return {"KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{self.ssl_port}", "KAFKA_SECURITY_PROTOCOL": "SSL",
                    "KAFKA_SSL_CAFILE": str(self.ca_file), "KAFKA_SSL_CERTFILE": str(self.client_cert),
                    "KAFKA_SSL_KEYFILE": str(self.client_key)}
        assert mechanism is not None
        user, secret = USERS[mechanism]
        return {"KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{self.sasl_ssl_port}", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": mechanism, "KAFKA_SASL_USERNAME": user,
                "KAFKA_SASL_PASSWORD": password or secret, "KAFKA_SSL_CAFILE": str(self.ca_file)}


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _keypem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def issue(subject: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
           server: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=2)))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(IPv4Address(HOST))]),
                critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA; the broker's certificate for 127.0.0.1 signed by it; a client certificate signed by it."""
    ca, ca_key = issue("attain-test-ca", None)
    broker, broker_key = issue("attain-test-broker", (ca.subject, ca_key), server=True)
    client, client_key = issue("attain-test-client", (ca.subject, ca_key))
    files = {"ca": folder / "ca.pem", "broker": folder / "broker.pem", "client": folder / "client.pem",
             "client_key": folder / "client.key"}
    files["ca"].write_bytes(pem(ca))
    files["broker"].write_bytes(_keypem(broker_key) + pem(broker) + pem(ca))  # Kafka's PEM key store
    files["client"].write_bytes(pem(client))
    files["client_key"].write_bytes(_keypem(client_key))
    return files


def _properties(folder: Path, files: dict[str, Path], ports: dict[str, int],
                super_users: list[str] | None = None) -> dict[str, str]:
    plain_users = " ".join(f'user_{user}="{secret}"' for user, secret in [USERS["PLAIN"]])
    authorization = {} if super_users is None else {
        # ACLs enforced (tests/integration/security/acl_broker.py): anything not granted is refused. The broker's
        # own plaintext listeners (inter-broker, controller) authenticate nobody, so ANONYMOUS is a super user;
        # clients are never given those ports.
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": ";".join(["User:ANONYMOUS", *(f"User:{user}" for user in super_users)]),
    }
    return authorization | {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{ports['controller']}",
        "listeners": f"BROKER://{HOST}:{ports['broker']},SASL_SSL://{HOST}:{ports['sasl_ssl']},"
                     f"SSL://{HOST}:{ports['ssl']},CONTROLLER://{HOST}:{ports['controller']}",
        "advertised.listeners": f"BROKER://{HOST}:{ports['broker']},SASL_SSL://{HOST}:{ports['sasl_ssl']},"
                                f"SSL://{HOST}:{ports['ssl']}",
        "listener.security.protocol.map": "BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
        "inter.broker.listener.name": "BROKER",
        "controller.listener.names": "CONTROLLER",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_ssl.plain.sasl.jaas.config":
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(files["broker"]),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files["ca"]),
        "listener.name.ssl.ssl.client.auth": "required",  # the SSL listener: mutual TLS
        "log.dirs": str(folder / "data"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "num.network.threads": "2",
        "num.io.threads": "2",
    }


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


@contextlib.contextmanager
def secure_broker(within_s: float = 90.0, scram_users: dict[str, str] | None = None,
                  super_users: list[str] | None = None) -> Iterator[SecureBroker]:
    """Start the secure broker, yield it once its secure listeners accept connections, stop it after.
    `scram_users`: more SCRAM-SHA-512 users (name: password); `super_users`: with it, the broker enforces ACLs
    (StandardAuthorizer) and these users may do anything."""
    java, version = toolchain()
    folder = LOCAL / "secure-kafka" / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    files = make_certificates(folder)
    ports = dict(zip(("broker", "sasl_ssl", "ssl", "controller"), free_ports(4), strict=True))
    props = folder / "server.properties"
    props.write_text("".join(f"{k}={v}\n" for k, v in _properties(folder, files, ports, super_users).items()))
    scram = [arg for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
             for arg in ("--add-scram", f"{mechanism}=[name={USERS[mechanism][0]},password={USERS[mechanism][1]}]")]
    scram += [arg for user, secret in (scram_users or {}).items()
              for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={secret}]")]
    format_storage(java, props, new_cluster_id(), *scram)
    with (folder / "kafka.out").open("wb") as out:
        proc = subprocess.Popen([*jvm_args(java, heap="-Xms64m -Xmx384m", logs_dir=folder), "kafka.Kafka", str(props)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    try:
        deadline = time.monotonic() + within_s
        while not (_answers(ports["sasl_ssl"]) and _answers(ports["ssl"])):
            if proc.poll() is not None or time.monotonic() > deadline:
                log_file = folder / "kafka.log"
                log = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
                raise RuntimeError(f"the secure Kafka {version} broker did not start (exit {proc.poll()}): {log}")
            time.sleep(0.3)
        yield SecureBroker(folder, ports["sasl_ssl"], ports["ssl"], files["ca"], files["client"], files["client_key"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
