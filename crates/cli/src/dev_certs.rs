//! `sluice dev certs`: a local certificate authority with a broker and a
//! client certificate signed by it, as PEM files, for trying SSL, mTLS and
//! SASL_SSL listeners. Not for production: the CA's key sits next to the
//! certificates, unencrypted.

use anyhow::{bail, Context};
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub(crate) struct CertsArgs {
    /// Where to write the files (created if missing).
    #[arg(long, default_value = "./sluice-certs")]
    dir: PathBuf,
    /// A host name or IP address the broker certificate is valid for
    /// (repeatable; clients check the one they connect to).
    #[arg(long = "host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
    hosts: Vec<String>,
    /// The client certificate's common name: its principal is
    /// User:CN=<name> (ssl.principal.mapping.rules maps it further).
    #[arg(long, default_value = "client")]
    client: String,
    /// Overwrite files that exist.
    #[arg(long)]
    force: bool,
}

/// One certificate and its key, as PEM.
struct Issued {
    certificate: String,
    key: String,
}

pub(crate) fn run(args: CertsArgs) -> anyhow::Result<()> {
    let files = [
        "ca.pem",
        "ca-key.pem",
        "broker.pem",
        "broker-cert.pem",
        "broker-key.pem",
        "client.pem",
        "client-cert.pem",
        "client-key.pem",
    ];
    if !args.force {
        if let Some(existing) = files.iter().find(|f| args.dir.join(f).exists()) {
            bail!(
                "{} exists; pass --force to overwrite",
                args.dir.join(existing).display()
            );
        }
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = name(&[
        (DnType::OrganizationName, "Sluice dev"),
        (DnType::CommonName, "Sluice dev CA"),
    ]);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key)?;

    let issue = |common_name: &str,
                 hosts: &[String],
                 purposes: &[ExtendedKeyUsagePurpose]|
     -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(hosts.to_vec())
            .with_context(|| format!("invalid --host among {hosts:?}"))?;
        params.distinguished_name = name(&[
            (DnType::OrganizationName, "Sluice dev"),
            (DnType::CommonName, common_name),
        ]);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = purposes.to_vec();
        let certificate = params.signed_by(&key, &ca, &ca_key)?;
        Ok(Issued {
            certificate: certificate.pem(),
            key: key.serialize_pem(),
        })
    };
    let broker_name = args.hosts.first().map_or("localhost", String::as_str);
    // A broker is also a client of the other brokers (replication over an
    // SSL inter-broker listener with ssl.client.auth=required).
    let broker = issue(
        broker_name,
        &args.hosts,
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )?;
    let client = issue(&args.client, &[], &[ExtendedKeyUsagePurpose::ClientAuth])?;

    let dir = &args.dir;
    write(dir, "ca.pem", &ca.pem(), false)?;
    write(dir, "ca-key.pem", &ca_key.serialize_pem(), true)?;
    // The broker's key store: key and chain in one file (ssl.keystore.location).
    write(
        dir,
        "broker.pem",
        &format!("{}{}", broker.key, broker.certificate),
        true,
    )?;
    write(dir, "broker-cert.pem", &broker.certificate, false)?;
    write(dir, "broker-key.pem", &broker.key, true)?;
    // The same for the client: one file for Java's PEM key store, two for librdkafka.
    write(
        dir,
        "client.pem",
        &format!("{}{}", client.key, client.certificate),
        true,
    )?;
    write(dir, "client-cert.pem", &client.certificate, false)?;
    write(dir, "client-key.pem", &client.key, true)?;

    let d = dir.display();
    println!("Wrote a local CA, a broker and a client certificate to {d}:");
    println!("  ca.pem            the CA (clients trust it; the broker trusts it for client certificates)");
    println!(
        "  broker.pem        the broker's key and certificate ({})",
        args.hosts.join(", ")
    );
    println!(
        "  client-cert.pem   the client certificate, principal User:CN={},O=Sluice dev",
        args.client
    );
    println!("  client-key.pem    its key (client.pem holds both)");
    println!();
    println!("A broker with TLS and client certificates (mTLS):");
    println!("  sluice serve --listen SSL://127.0.0.1:9093 \\");
    println!("    --set ssl.keystore.location={d}/broker.pem \\");
    println!("    --set ssl.truststore.location={d}/ca.pem --set ssl.client.auth=required");
    println!();
    println!("A client (kcat, confluent-kafka, librdkafka):");
    println!("  kcat -b 127.0.0.1:9093 -X security.protocol=SSL -X ssl.ca.location={d}/ca.pem \\");
    println!("    -X ssl.certificate.location={d}/client-cert.pem -X ssl.key.location={d}/client-key.pem -L");
    println!();
    println!("These are for local use only: ca-key.pem can sign anything.");
    Ok(())
}

fn name(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    for (kind, value) in parts {
        name.push(kind.clone(), *value);
    }
    name
}

/// Writes `contents`; keys are readable by their owner only.
fn write(dir: &Path, file: &str, contents: &str, secret: bool) -> anyhow::Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    Ok(())
}
