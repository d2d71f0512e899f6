//! Kafka's listener settings: `listeners` and `advertised.listeners` as
//! `NAME://host:port` entries, `listener.security.protocol.map` naming each
//! listener's security protocol, and `controller.listener.names` marking
//! the listeners the controller quorum speaks on. A bare `host:port` is a
//! PLAINTEXT listener, as `--listen` gives.

use crate::config::BrokerConfig;
use std::collections::BTreeMap;

/// Kafka's default `listener.security.protocol.map`: each protocol is a
/// listener name of its own.
const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";
const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
/// The protocols a client listener can serve today (TLS comes later).
const SERVED_PROTOCOLS: &[&str] = &["PLAINTEXT", "SASL_PLAINTEXT"];

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
/// and `_`; each may appear once, and so may each port.
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
) -> Result<BTreeMap<String, String>, String> {
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
        if !PROTOCOLS.contains(&protocol) {
            return Err(format!(
                "unknown security protocol {protocol} for listener {name} (one of {})",
                PROTOCOLS.join(", ")
            ));
        }
        map.insert(name.to_string(), protocol.to_string());
    }
    if value.is_none() {
        for name in controller_names {
            map.entry(name.clone())
                .or_insert_with(|| "PLAINTEXT".to_string());
        }
    }
    Ok(map)
}

/// The listeners of one node, checked against each other.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// Where clients connect (the first listener that is not a controller
    /// listener) and what it is called.
    pub client: Listener,
    /// The client listener's security protocol (`listener.security.protocol.map`).
    pub client_protocol: String,
    /// What the client listener is advertised as.
    pub advertised: Listener,
    /// The controller quorum's listener, on nodes that run a controller.
    pub controller: Option<Listener>,
}

impl Listeners {
    /// Reads and checks `listeners`, `advertised.listeners`,
    /// `listener.security.protocol.map` and `controller.listener.names`.
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
        for listener in &listeners {
            let protocol = protocols.get(&listener.name).ok_or_else(|| {
                format!(
                    "listener {} has no security protocol: add it to listener.security.protocol.map (e.g. {}:PLAINTEXT)",
                    listener.name, listener.name
                )
            })?;
            if controller_names.contains(&listener.name) && protocol != "PLAINTEXT" {
                return Err(format!(
                    "controller listener {} uses security protocol {protocol}; the controller quorum speaks PLAINTEXT only yet",
                    listener.name
                ));
            }
            if !SERVED_PROTOCOLS.contains(&protocol.as_str()) {
                return Err(format!(
                    "listener {} uses security protocol {protocol}, which is not supported yet (only {})",
                    listener.name,
                    SERVED_PROTOCOLS.join(" and ")
                ));
            }
        }
        let mut controllers = listeners
            .iter()
            .filter(|l| controller_names.contains(&l.name));
        let controller = controllers.next().cloned();
        let client = listeners
            .iter()
            .find(|l| !controller_names.contains(&l.name))
            .cloned()
            .ok_or_else(|| {
                "listeners has no listener for clients (every listener is a controller listener)"
                    .to_string()
            })?;
        let advertised = match config.explicit("advertised.listeners") {
            None => client.clone(),
            Some(value) => {
                let advertised = parse(value).map_err(|e| format!("advertised.listeners: {e}"))?;
                if let Some(c) = advertised
                    .iter()
                    .find(|a| controller_names.contains(&a.name))
                {
                    return Err(format!(
                        "advertised.listeners must not name the controller listener {}",
                        c.name
                    ));
                }
                advertised
                    .into_iter()
                    .find(|a| a.name == client.name)
                    .unwrap_or_else(|| client.clone())
            }
        };
        let client_protocol = protocols
            .get(&client.name)
            .cloned()
            .unwrap_or_else(|| "PLAINTEXT".to_string());
        Ok(Listeners {
            client,
            client_protocol,
            advertised,
            controller,
        })
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
        assert_eq!(l.client.port, 9092);
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
    fn unsupported_protocols_and_controller_only_listeners_are_refused() {
        let ssl = Listeners::from_config(&config(&[("listeners", "SSL://127.0.0.1:9093")]));
        assert!(ssl.unwrap_err().contains("not supported yet"));
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
        assert_eq!(l.advertised.host, "broker-1.example");
        assert_eq!(l.advertised.name, "INTERNAL");
    }
}
