//! Which QoS 1 publishes await their PUBACK, and how far the event cursor
//! may move once they arrive.
//!
//! rumqttc reports the packet id it gave a publish (`Outgoing::Publish`) in
//! the order publishes were handed to it, and the broker's `PubAck` by
//! packet id. An event counts as sent only when its own message is
//! acknowledged AND every older event's is: the cursor is a prefix.

use std::collections::{HashMap, VecDeque};

/// What an outstanding publish carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// The `<prefix>/events` message of this event id.
    Event(i64),
    /// Anything else (states, discovery, stats): acknowledged, not tracked further.
    Other,
}

/// The publishes of one session that await acknowledgement.
#[derive(Debug, Default)]
pub struct Inflight {
    /// Handed to the client, no packet id seen yet; oldest first.
    unassigned: VecDeque<Tag>,
    /// Sent with this packet id, awaiting PUBACK.
    by_pkid: HashMap<u16, Tag>,
    /// Event messages in id order, with whether each is acknowledged.
    events: VecDeque<(i64, bool)>,
}

impl Inflight {
    /// A publish was handed to the client (in send order).
    pub fn push(&mut self, tag: Tag) {
        if let Tag::Event(id) = tag {
            self.events.push_back((id, false));
        }
        self.unassigned.push_back(tag);
    }

    /// The event loop sent the oldest unassigned publish as `pkid`.
    pub fn assigned(&mut self, pkid: u16) {
        if let Some(tag) = self.unassigned.pop_front() {
            self.by_pkid.insert(pkid, tag);
        }
    }

    /// The broker acknowledged `pkid`. Returns the new cursor (the newest
    /// event id whose message and all older ones are acknowledged) when it moved.
    pub fn acked(&mut self, pkid: u16) -> Option<i64> {
        if let Some(Tag::Event(id)) = self.by_pkid.remove(&pkid) {
            if let Ok(i) = self.events.binary_search_by_key(&id, |e| e.0) {
                self.events[i].1 = true;
            }
        }
        let mut cursor = None;
        while let Some(&(id, true)) = self.events.front() {
            cursor = Some(id);
            self.events.pop_front();
        }
        cursor
    }

    /// Publishes not yet acknowledged.
    pub fn len(&self) -> usize {
        self.unassigned.len() + self.by_pkid.len()
    }

    /// Nothing awaits an acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_moves_only_over_a_fully_acknowledged_prefix() {
        let mut f = Inflight::default();
        for t in [
            Tag::Other,
            Tag::Event(10),
            Tag::Event(12),
            Tag::Other,
            Tag::Event(13),
        ] {
            f.push(t);
        }
        for pkid in 1..=5 {
            f.assigned(pkid);
        }
        assert_eq!(f.len(), 5);
        assert_eq!(f.acked(3), None, "12 is acknowledged but 10 is not");
        assert_eq!(f.acked(1), None, "an Other moves nothing");
        assert_eq!(f.acked(2), Some(12));
        assert_eq!(f.acked(99), None, "an unknown pkid is ignored");
        assert_eq!(f.acked(5), Some(13));
        assert_eq!(f.acked(4), None);
        assert!(f.is_empty());
    }
}
