//! The user's vote on an answer (thumbs up or down, with an optional comment), as plain data: what a click on a
//! thumb or a sent comment turns the vote into. The feedback component shows the new vote at once, asks the server,
//! and puts the old one back if the server refuses; this module does no I/O and is tested natively.

use shared::{Feedback, Rating};

/// The longest comment the server keeps (in characters).
pub const MAX_COMMENT: usize = shared::MAX_FEEDBACK_COMMENT_CHARS;

/// A vote on an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// Up or down.
    pub rating: Rating,
    /// What the user added, if anything.
    pub comment: Option<String>,
}

impl Vote {
    /// The vote stored with a message (`metadata.feedback`).
    pub fn of(feedback: &Feedback) -> Self {
        Self { rating: feedback.rating, comment: feedback.comment.clone() }
    }
}

/// The vote after a click on `thumb`: the active thumb again removes the vote (`None`); the other thumb replaces
/// it, without the comment, which explained the other rating.
pub fn click(current: Option<&Vote>, thumb: Rating) -> Option<Vote> {
    match current {
        Some(vote) if vote.rating == thumb => None,
        _ => Some(Vote { rating: thumb, comment: None }),
    }
}

/// The vote with a comment (trimmed; blank removes it; cut to [`MAX_COMMENT`] characters). A comment needs a
/// rating: without a vote there is nothing to comment on.
pub fn with_comment(current: Option<&Vote>, comment: &str) -> Option<Vote> {
    let comment = comment.trim();
    let end = comment.char_indices().nth(MAX_COMMENT).map_or(comment.len(), |(at, _)| at);
    let comment = (!comment.is_empty()).then(|| comment[..end].to_owned());
    current.map(|vote| Vote { rating: vote.rating, comment })
}

/// The counter under the comment box: "12 / 2000".
pub fn counter(comment: &str) -> String {
    // Characters are the bytes that do not continue one (a plain loop: `chars().count()` is a larger routine).
    format!("{} / {MAX_COMMENT}", comment.bytes().filter(|b| b & 0xC0 != 0x80).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(rating: Rating, comment: Option<&str>) -> Vote {
        Vote { rating, comment: comment.map(str::to_owned) }
    }

    #[test]
    fn a_thumb_votes_switches_or_removes_the_vote() {
        assert_eq!(click(None, Rating::Up), Some(vote(Rating::Up, None)));
        assert_eq!(click(Some(&vote(Rating::Up, None)), Rating::Up), None, "the active thumb again removes it");
        assert_eq!(
            click(Some(&vote(Rating::Up, Some("great"))), Rating::Down),
            Some(vote(Rating::Down, None)),
            "switching drops the comment about the other rating"
        );
    }

    #[test]
    fn comments_are_trimmed_cut_and_need_a_vote() {
        let up = vote(Rating::Up, None);
        assert_eq!(with_comment(Some(&up), "  clear \n"), Some(vote(Rating::Up, Some("clear"))));
        assert_eq!(with_comment(Some(&vote(Rating::Down, Some("x"))), "   "), Some(vote(Rating::Down, None)));
        assert_eq!(with_comment(None, "no vote"), None);
        let long = "é".repeat(MAX_COMMENT + 5);
        let cut = with_comment(Some(&up), &long).and_then(|v| v.comment).expect("a comment");
        assert_eq!(cut.chars().count(), MAX_COMMENT);
        assert_eq!(counter("héllo"), "5 / 2000");
    }
}
