//! Counting open connections, in total and per client address, so that one client (or
//! a flood of them) cannot take every socket the server has.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds its maximum of connections.
    Full,
    /// This client address holds its maximum.
    PerClient,
}

impl Refusal {
    /// A short reason for the log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "too many connections",
            Refusal::PerClient => "too many connections from this address",
        }
    }

    /// The raw HTTP/1.1 answer written before the socket is closed.
    pub fn response(self) -> Vec<u8> {
        let (status, reason) = match self {
            Refusal::Full => (503, "Service Unavailable"),
            Refusal::PerClient => (429, "Too Many Requests"),
        };
        let body = format!(
            r#"{{"type":"https://arcana.dev/problems/too_many_connections","title":"{reason}","status":{status},"code":"too_many_connections","detail":"{}."}}"#,
            self.reason()
        );
        format!(
            "HTTP/1.1 {status} {reason}\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// The open connections. Cheap to clone.
#[derive(Clone)]
pub struct Counter {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_ip: usize,
}

/// One admitted connection; it is counted until dropped.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Counter {
    /// A counter with these maximums.
    pub fn new(max_total: usize, max_per_ip: usize) -> Counter {
        Counter {
            counts: Arc::default(),
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
        }
    }

    /// Admits a connection from `ip`, or says why not.
    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut counts = self.counts.lock().expect("connection counts");
        if counts.total >= self.max_total {
            return Err(Refusal::Full);
        }
        let mine = counts.by_ip.entry(ip).or_default();
        if *mine >= self.max_per_ip {
            return Err(Refusal::PerClient);
        }
        *mine += 1;
        counts.total += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().expect("connection counts").total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("connection counts");
        counts.total -= 1;
        if let Some(n) = counts.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_per_address_and_in_total_and_slots_give_back() {
        let c = Counter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = c.admit(a).unwrap();
        let _s2 = c.admit(a).unwrap();
        assert_eq!(c.admit(a).err(), Some(Refusal::PerClient));
        let _s3 = c.admit(b).unwrap();
        assert_eq!(c.admit(b).err(), Some(Refusal::Full));
        drop(s1);
        assert_eq!(c.open(), 2);
        assert!(c.admit(a).is_ok());
    }

    #[test]
    fn refusal_answers_are_well_formed_http() {
        for r in [Refusal::Full, Refusal::PerClient] {
            let bytes = r.response();
            let text = std::str::from_utf8(&bytes).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(body.len(), length, "{text}");
        }
    }
}
