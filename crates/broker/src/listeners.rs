//! Kafka's listener settings: `listeners` and `advertised.listeners` as
//! `NAME://host:port` entries, `listener.security.protocol.map` naming each
//! listener's security protocol, `controller.listener.names` marking the
//! listeners the controller quorum speaks on, and `inter.broker.listener.name`
//! the one other brokers replicate through. A bare `host:port` is a
//! PLAINTEXT listener, as `--listen` gives. A broker serves every client
//! listener at once (say PLAINTEXT on loopback for tools and SASL_SSL for
//! clients), and describes the cluster to each client by the endpoints of
//! the listener it connected to.

use crate::config::BrokerConfig;
use std::collections::BTreeMap;

/// Kafka's default `listener.security.protocol.map`: each protocol is a
/// listener name of its own.
const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// Kafka's security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether connections are TLS sessions (SSL, SASL_SSL).
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections must authenticate with SASL first.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One `NAME://host:port` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    /// `host:port`, with an empty host meaning every interface.
    pub fn address(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        format!("{host}:{}", self.port)
    }
}

/// Parses a `listeners`-style list. Names are upper case letters, digits
/// and `_`; each may appear once.
pub fn parse(value: &str) -> Result<Vec<Listener>, String> {
    let mut listeners: Vec<Listener> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, address) = entry.split_once("://").unwrap_or(("PLAINTEXT", entry));
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            return Err(format!(
                "listener name '{name}' in '{entry}' must be upper case letters, digits and '_'"
            ));
        }
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("'{entry}' is not NAME://host:port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("invalid port '{port}' in '{entry}'"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if listeners.iter().any(|l| l.name == name) {
            return Err(format!("listener name {name} appears twice"));
        }
        listeners.push(Listener {
            name: name.to_string(),
            host: host.to_string(),
            port,
        });
    }
    if listeners.is_empty() {
        return Err("no listener given".to_string());
    }
    Ok(listeners)
}

/// `listener.security.protocol.map` as name → protocol. Unset, it is
/// Kafka's default plus PLAINTEXT for each controller listener, as Kafka
/// does in KRaft mode.
pub fn protocol_map(
    value: Option<&str>,
    controller_names: &[String],
) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut map = BTreeMap::new();
    for entry in value
        .unwrap_or(DEFAULT_PROTOCOL_MAP)
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| format!("'{entry}' is not NAME:PROTOCOL"))?;
        let protocol = SecurityProtocol::from_name(protocol).ok_or_else(|| {
            format!(
                "unknown security protocol {protocol} for listener {name} (one of {})",
                SecurityProtocol::ALL.map(SecurityProtocol::name).join(", ")
            )
        })?;
        map.insert(name.to_string(), protocol);
    }
    if value.is_none() {
        for name in controller_names {
            map.entry(name.clone())
                .or_insert(SecurityProtocol::Plaintext);
        }
    }
    Ok(map)
}

/// A listener clients (and other brokers) connect to.
#[derive(Debug, Clone)]
pub struct ClientListener {
    /// Its name and where it binds.
    pub bind: Listener,
    pub protocol: SecurityProtocol,
    /// What `advertised.listeners` says for it; unset, the bound address
    /// is advertised (known only once bound, for port 0).
    pub advertised: Option<Listener>,
}

impl ClientListener {
    pub fn name(&self) -> &str {
        &self.bind.name
    }
}

/// The listeners of one node, checked against each other.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// Every listener that is not a controller listener, in the order of
    /// `listeners`.
    pub clients: Vec<ClientListener>,
    /// The name of the client listener other brokers use
    /// (`inter.broker.listener.name`).
    pub inter_broker: String,
    /// The controller quorum's listener, on nodes that run a controller.
    pub controller: Option<Listener>,
    /// Its security protocol: PLAINTEXT or SSL.
    pub controller_protocol: SecurityProtocol,
}

impl Listeners {
    /// Reads and checks `listeners`, `advertised.listeners`,
    /// `listener.security.protocol.map`, `controller.listener.names` and
    /// `inter.broker.listener.name`.
    pub fn from_config(config: &BrokerConfig) -> Result<Listeners, String> {
        let controller_names: Vec<String> = config
            .get("controller.listener.names")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        let listeners = parse(config.get("listeners").unwrap_or_default())
            .map_err(|e| format!("listeners: {e}"))?;
        let protocols = protocol_map(
            config.explicit("listener.security.protocol.map"),
            &controller_names,
        )
        .map_err(|e| format!("listener.security.protocol.map: {e}"))?;
        let advertised = match config.explicit("advertised.listeners") {
            None => Vec::new(),
            Some(value) => parse(value).map_err(|e| format!("advertised.listeners: {e}"))?,
        };
        for a in &advertised {
            if controller_names.contains(&a.name) {
                return Err(format!(
                    "advertised.listeners must not name the controller listener {}",
                    a.name
                ));
            }
            if !listeners.iter().any(|l| l.name == a.name) {
                return Err(format!(
                    "advertised.listeners names {}, which is not in listeners",
                    a.name
                ));
            }
        }
        let mut clients = Vec::new();
        let mut controller = None;
        for listener in listeners {
            let protocol = *protocols.get(&listener.name).ok_or_else(|| {
                format!(
                    "listener {} has no security protocol: add it to listener.security.protocol.map (e.g. {}:PLAINTEXT)",
                    listener.name, listener.name
                )
            })?;
            if controller_names.contains(&listener.name) {
                if protocol.sasl() {
                    return Err(format!(
                        "controller listener {} uses security protocol {}; the controller quorum speaks PLAINTEXT or SSL (with ssl.client.auth=required to authenticate voters), not SASL yet",
                        listener.name,
                        protocol.name()
                    ));
                }
                controller.get_or_insert((listener, protocol));
                continue;
            }
            if let Some(other) = clients
                .iter()
                .find(|c: &&ClientListener| c.bind.port == listener.port && listener.port != 0)
            {
                return Err(format!(
                    "listeners {} and {} both use port {}",
                    other.name(),
                    listener.name,
                    listener.port
                ));
            }
            clients.push(ClientListener {
                advertised: advertised.iter().find(|a| a.name == listener.name).cloned(),
                bind: listener,
                protocol,
            });
        }
        if clients.is_empty() {
            return Err(
                "listeners has no listener for clients (every listener is a controller listener)"
                    .to_string(),
            );
        }
        let inter_broker = match config.explicit("inter.broker.listener.name") {
            Some(name) => {
                if !clients.iter().any(|c| c.name() == name) {
                    return Err(format!(
                        "inter.broker.listener.name is {name}, which is not a client listener in listeners"
                    ));
                }
                name.to_string()
            }
            // Kafka's default: the listener named as security.inter.broker.protocol
            // (PLAINTEXT); a node without one uses its first listener.
            None => clients
                .iter()
                .find(|c| c.name() == "PLAINTEXT")
                .unwrap_or(&clients[0])
                .name()
                .to_string(),
        };
        let (controller, controller_protocol) = match controller {
            Some((listener, protocol)) => (Some(listener), protocol),
            None => (None, SecurityProtocol::Plaintext),
        };
        Ok(Listeners {
            clients,
            inter_broker,
            controller,
            controller_protocol,
        })
    }

    /// The listener other brokers connect to.
    pub fn inter_broker(&self) -> &ClientListener {
        self.clients
            .iter()
            .find(|c| c.name() == self.inter_broker)
            .expect("inter_broker names a client listener")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: &[(&str, &str)]) -> BrokerConfig {
        BrokerConfig::from_settings(settings.iter().copied()).expect("valid settings")
    }

    #[test]
    fn names_addresses_and_the_bare_form() {
        let parsed = parse("PLAINTEXT://127.0.0.1:9092, CONTROLLER://:9093").unwrap();
        assert_eq!(parsed[0].address(), "127.0.0.1:9092");
        assert_eq!(parsed[1].name, "CONTROLLER");
        assert_eq!(parsed[1].address(), "0.0.0.0:9093");
        assert_eq!(parse("localhost:1").unwrap()[0].name, "PLAINTEXT");
        assert!(parse("plaintext://x:1").is_err());
        assert!(parse("A://x:1,A://x:2").is_err());
        assert!(parse("A://x:port").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn controller_listeners_are_plaintext_unless_mapped() {
        let l = Listeners::from_config(&config(&[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
        ]))
        .unwrap();
        assert_eq!(l.clients[0].bind.port, 9092);
        assert_eq!(l.controller.map(|c| c.port), Some(9093));
        let unmapped = Listeners::from_config(&config(&[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT"),
        ]));
        assert!(unmapped
            .unwrap_err()
            .contains("CONTROLLER has no security protocol"));
    }

    #[test]
    fn a_controller_listener_may_be_ssl_but_not_sasl() {
        let mapped = |protocol: &str| {
            Listeners::from_config(&config(&[
                (
                    "listeners",
                    "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
                ),
                ("controller.listener.names", "CONTROLLER"),
                (
                    "listener.security.protocol.map",
                    &format!("PLAINTEXT:PLAINTEXT,CONTROLLER:{protocol}"),
                ),
            ]))
        };
        assert_eq!(
            mapped("SSL").unwrap().controller_protocol,
            SecurityProtocol::Ssl
        );
        assert_eq!(
            mapped("PLAINTEXT").unwrap().controller_protocol,
            SecurityProtocol::Plaintext
        );
        for sasl in ["SASL_SSL", "SASL_PLAINTEXT"] {
            assert!(mapped(sasl).unwrap_err().contains("not SASL yet"));
        }
    }

    #[test]
    fn several_client_listeners_and_the_inter_broker_one() {
        let l = Listeners::from_config(&config(&[(
            "listeners",
            "SASL_SSL://0.0.0.0:9094,PLAINTEXT://127.0.0.1:9092,SSL://:9093",
        )]))
        .unwrap();
        let protocols: Vec<_> = l.clients.iter().map(|c| c.protocol).collect();
        assert_eq!(
            protocols,
            [
                SecurityProtocol::SaslSsl,
                SecurityProtocol::Plaintext,
                SecurityProtocol::Ssl
            ]
        );
        // Kafka's default: the listener named PLAINTEXT.
        assert_eq!(l.inter_broker().bind.port, 9092);
        let named = Listeners::from_config(&config(&[
            ("listeners", "SASL_SSL://:9094,SSL://:9093"),
            ("inter.broker.listener.name", "SSL"),
        ]))
        .unwrap();
        assert_eq!(named.inter_broker().protocol, SecurityProtocol::Ssl);
        let unknown = Listeners::from_config(&config(&[
            ("listeners", "SSL://:9093"),
            ("inter.broker.listener.name", "INTERNAL"),
        ]));
        assert!(unknown.unwrap_err().contains("not a client listener"));
        let clash =
            Listeners::from_config(&config(&[("listeners", "SSL://:9093,PLAINTEXT://:9093")]));
        assert!(clash.unwrap_err().contains("both use port 9093"));
        let stray = Listeners::from_config(&config(&[
            ("listeners", "SSL://:9093"),
            ("advertised.listeners", "PLAINTEXT://h:1"),
        ]));
        assert!(stray.unwrap_err().contains("not in listeners"));
    }

    #[test]
    fn controller_only_listeners_are_refused() {
        let only_controller = Listeners::from_config(&config(&[
            ("listeners", "CONTROLLER://127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
        ]));
        assert!(only_controller
            .unwrap_err()
            .contains("no listener for clients"));
    }

    #[test]
    fn the_client_listener_is_advertised_under_its_name() {
        let l = Listeners::from_config(&config(&[
            ("listeners", "INTERNAL://0.0.0.0:9092"),
            ("listener.security.protocol.map", "INTERNAL:PLAINTEXT"),
            ("advertised.listeners", "INTERNAL://broker-1.example:9092"),
        ]))
        .unwrap();
        let advertised = l.clients[0].advertised.as_ref().unwrap();
        assert_eq!(advertised.host, "broker-1.example");
        assert_eq!(advertised.name, "INTERNAL");
    }
}
