//! The share dialog of a chat as plain data: the chat's read-only links, the one just made (its address shown to
//! copy), what happened last, and whether a request is on its way. The dialog (`components/chat_menu.rs`) asks the
//! server and draws this; this module does no I/O and is tested natively.

use shared::Share;
use uuid::Uuid;

/// The share dialog's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sharing {
    /// The chat's links, newest first; `None` until they are loaded.
    pub links: Option<Vec<Share>>,
    /// The link just made.
    pub created: Option<Share>,
    /// What happened last (a link copied or revoked, or why something failed).
    pub status: Option<String>,
    /// A request is on its way.
    pub busy: bool,
}

impl Sharing {
    /// The dialog as it opens: the links are loading.
    pub fn opening() -> Self {
        Self { busy: true, ..Self::default() }
    }

    /// A link was made: it goes first in the list and is shown to copy.
    pub fn made(&mut self, share: Share) {
        self.links.get_or_insert_with(Vec::new).insert(0, share.clone());
        self.created = Some(share);
        self.status = Some("Link created. Anyone signed in to this app can open it.".to_owned());
        self.busy = false;
    }

    /// A link was revoked: it leaves the list (and the box, if it was the one just made).
    pub fn revoked(&mut self, id: Uuid) {
        if let Some(links) = &mut self.links {
            links.retain(|share| share.id != id);
        }
        if self.created.as_ref().is_some_and(|share| share.id == id) {
            self.created = None;
        }
        self.status = Some("Link revoked. It no longer opens.".to_owned());
        self.busy = false;
    }

    /// A request failed: why.
    pub fn failed(&mut self, why: String) {
        self.status = Some(why);
        self.busy = false;
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn share(n: u128) -> Share {
        let id = Uuid::from_u128(n);
        Share { id, chat_id: Uuid::nil(), leaf_id: Uuid::nil(), url: format!("/share/{id}"), created_at: Utc::now() }
    }

    #[test]
    fn links_made_go_first_and_revoked_ones_go() {
        let mut sharing = Sharing::opening();
        assert!(sharing.busy && sharing.links.is_none());
        sharing.links = Some(vec![share(1)]);
        sharing.busy = true;
        sharing.made(share(2));
        assert!(!sharing.busy);
        assert_eq!(sharing.links.as_ref().map(Vec::len), Some(2));
        assert_eq!(sharing.links.as_ref().map(|l| l[0].id), Some(Uuid::from_u128(2)), "newest first");
        assert_eq!(sharing.created.as_ref().map(|s| s.id), Some(Uuid::from_u128(2)));

        sharing.revoked(Uuid::from_u128(1));
        assert_eq!(sharing.created.as_ref().map(|s| s.id), Some(Uuid::from_u128(2)), "another link stays shown");
        sharing.revoked(Uuid::from_u128(2));
        assert_eq!((sharing.links, sharing.created), (Some(Vec::new()), None));
        assert_eq!(sharing.status.as_deref(), Some("Link revoked. It no longer opens."));

        let mut failed = Sharing::opening();
        failed.failed("An answer is being written.".into());
        assert_eq!((failed.busy, failed.status.as_deref()), (false, Some("An answer is being written.")));
    }
}
