//! What the controls inside messages' HTML (`answer_html.rs`) do: copy a code block, show a whole tool result,
//! allow or deny a tool call, vote and comment, switch to another version of a message, edit a question, pin a
//! message. One delegated listener per event on the message list does it all (clicks, keys in a question's edit
//! box, and typing for the comment's counter); each control finds its answer from the `data-message` around it, or
//! its question from the `data-question`.

use leptos::ev::{Event, KeyboardEvent, MouseEvent};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::{FeedbackRequest, Rating};
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement, HtmlInputElement, HtmlTextAreaElement};

use super::answer_html::full_text;
use super::copy::copy_text;
use crate::api;
use crate::state::answer::AnswerState;
use crate::state::feedback::{Vote, click, counter, with_comment};
use crate::state::session::Session;

/// Clicks any conversation handles, a shared one too: copying a code block, showing the whole of a cut box (`full`
/// finds that text from the answer's id, the call's id and the box's label). Returns the other control clicked.
pub fn on_read_click(ev: &MouseEvent, full: impl Fn(&str, &str, &str) -> Option<String>) -> Option<Element> {
    let target = ev.target()?.unchecked_into::<Element>();
    if let Ok(Some(button)) = target.closest(".copy-code") {
        let code = button
            .closest(".code-block")
            .ok()
            .flatten()
            .and_then(|block| block.query_selector("code").ok().flatten())
            .and_then(|code| code.text_content())
            .unwrap_or_default();
        copy_text(&code);
        button.set_text_content(Some("Copied"));
        set_timeout(move || button.set_text_content(Some("Copy")), std::time::Duration::from_millis(1500));
        return None;
    }
    let button = target.closest("button[data-action]").ok()??;
    if button.get_attribute("data-action").as_deref() == Some("show-all") {
        show_all(&button, full);
        return None;
    }
    Some(button)
}

/// Clicks on buttons inside messages; `model` answers an edited question.
pub fn on_click(session: Session, model: RwSignal<Option<String>>, ev: &MouseEvent) {
    let full = |message: &str, call: &str, label: &str| {
        session.answer(message)?.with_untracked(|a| full_text(&a.answer.parts, call, label))
    };
    let Some(button) = on_read_click(ev, full) else { return };
    let card = |selector: &str| button.closest(selector).ok().flatten();
    match button.get_attribute("data-action").as_deref() {
        Some("pin") => {
            if let Some(key) = button.get_attribute("data-pin") {
                session.toggle_pin(key);
            }
        }
        Some("edit") => {
            if let Some(question) = card("[data-question]") {
                session.editing.set(question.get_attribute("data-question"));
                // Into the box, after the text.
                request_animation_frame(move || {
                    if let Some(input) = value::<HtmlTextAreaElement>(&question, "textarea") {
                        let _ = input.focus();
                        let end = input.value().len() as u32;
                        let _ = input.set_selection_range(end, end);
                    }
                });
            }
        }
        Some(action @ ("edit-cancel" | "edit-save")) => {
            let Some(question) = card("[data-question]") else { return };
            let text = value::<HtmlTextAreaElement>(&question, "textarea")
                .map(|input| (input.value(), input.default_value().unwrap_or_default()));
            let (Some(key), Some((text, original))) = (question.get_attribute("data-question"), text) else { return };
            if action == "edit-save" && text.trim().is_empty() {
                return;
            }
            session.editing.set(None);
            if action == "edit-save" && text != original {
                session.edit(key, text, model.get_untracked());
                // The question is replaced by its new version: the keyboard goes to the message box.
                if let Some(composer) = document().get_element_by_id("composer-input") {
                    let _ = composer.unchecked_into::<HtmlElement>().focus();
                }
            } else {
                request_animation_frame(move || focus(&question, "[data-action=edit]"));
            }
        }
        Some("version") => {
            let (Some(to), Some(dir)) = (button.get_attribute("data-to"), button.get_attribute("data-dir")) else {
                return;
            };
            let Ok(id) = uuid::Uuid::parse_str(&to) else { return };
            spawn_local(async move {
                if session.switch(id).await {
                    // The thread is drawn again: the keyboard goes to the same button of the version now shown (the
                    // other one at an end).
                    request_animation_frame(move || {
                        let switcher = document().query_selector(&format!("[data-versions=\"{to}\"]")).ok().flatten();
                        if let Some(switcher) = switcher {
                            let same = format!("[data-dir={dir}]:enabled");
                            let found = value::<Element>(&switcher, &same).is_some();
                            focus(&switcher, if found { &same } else { "button:enabled" });
                        }
                    });
                }
            });
        }
        Some("approve") => {
            if let Some(card) = card(".approval") {
                answer_approval(session, card, true, None);
            }
        }
        Some(action @ ("deny" | "cancel")) => {
            if let Some(card) = card(".approval") {
                let denying = action == "deny";
                show(&card, ".approval-actions", !denying);
                show(&card, ".approval-deny", denying);
                focus(&card, if denying { "input" } else { "[data-action=deny]" });
            }
        }
        Some("confirm-deny") => {
            if let Some(card) = card(".approval") {
                let reason = value::<HtmlInputElement>(&card, "input").map(|input| input.value().trim().to_owned());
                answer_approval(session, card, false, reason.filter(|r| !r.is_empty()));
            }
        }
        Some("vote") => {
            let rating = button.get_attribute("data-rating").and_then(|r| Rating::parse(&r));
            // The vote's HTML is made again: the keyboard is put back from the slot around it, which stays.
            if let (Some(rating), Some(answer), Some(slot)) =
                (rating, answer_of(session, &button), card(".feedback-slot"))
            {
                let next = answer.with_untracked(|a| click(a.feedback.as_ref(), rating));
                // A new vote opens the comment box; a vote taken back leaves the keyboard on its thumb.
                let focus = if next.is_some() { "textarea" } else { thumb_selector(rating) };
                save(session, answer, next, slot, focus);
            }
        }
        Some(action @ ("comment" | "close")) => {
            if let Some(slot) = card(".feedback-slot") {
                let opening = action == "comment";
                show(&slot, ".feedback-form", opening);
                focus(&slot, if opening { "textarea" } else { "[data-action=comment]" });
            }
        }
        Some("send-comment") => {
            let slot = card(".feedback-slot");
            let text = slot.as_ref().and_then(|a| value::<HtmlTextAreaElement>(a, "textarea"));
            if let (Some(answer), Some(slot), Some(text)) = (answer_of(session, &button), slot, text) {
                show(&slot, ".feedback-form", false);
                // Without a vote (taken back meanwhile) there is nothing to comment on.
                if let Some(next) = answer.with_untracked(|a| with_comment(a.feedback.as_ref(), &text.value())) {
                    save(session, answer, Some(next), slot, "[data-action=comment]");
                }
            }
        }
        _ => {}
    }
}

/// Keys in a question's edit box: Escape cancels, Ctrl/Cmd+Enter saves.
pub fn on_keydown(ev: &KeyboardEvent) {
    let action = match ev.key().as_str() {
        "Escape" => "[data-action=edit-cancel]",
        "Enter" if ev.ctrl_key() || ev.meta_key() => "[data-action=edit-save]",
        _ => return,
    };
    let target: Element = event_target(ev);
    if let Some(button) = target.closest(".edit").ok().flatten().and_then(|edit| value::<HtmlElement>(&edit, action)) {
        ev.prevent_default();
        button.click();
    }
}

/// Typing in a comment: its counter.
pub fn on_input(ev: &Event) {
    let input: Element = event_target(ev);
    let form = input.closest(".feedback-form").ok().flatten();
    if let Some(counter_text) = form.and_then(|form| form.query_selector(".counter").ok().flatten()) {
        counter_text.set_text_content(Some(&counter(&event_target_value(ev))));
    }
}

fn answer_of(session: Session, inside: &Element) -> Option<RwSignal<AnswerState>> {
    let id = inside.closest("[data-message]").ok().flatten()?.get_attribute("data-message")?;
    session.answer(&id)
}

fn value<T: JsCast>(root: &Element, selector: &str) -> Option<T> {
    // The selectors name the kind of element, so it is not checked again (each check is more code).
    Some(root.query_selector(selector).ok().flatten()?.unchecked_into::<T>())
}

fn show(root: &Element, selector: &str, shown: bool) {
    if let Ok(Some(element)) = root.query_selector(selector) {
        let _ = if shown { element.remove_attribute("hidden") } else { element.set_attribute("hidden", "") };
    }
}

fn focus(root: &Element, selector: &str) {
    if let Some(element) = value::<HtmlElement>(root, selector) {
        let _ = element.focus();
    }
}

/// Replaces the start of a cut box with all of it.
fn show_all(button: &Element, full: impl Fn(&str, &str, &str) -> Option<String>) {
    let Some(card) = button.closest("details").ok().flatten() else { return };
    let message = card.get_attribute("data-message");
    let (Some(call), Some(message), Some(text_box)) =
        (card.get_attribute("data-key"), message, button.previous_element_sibling())
    else {
        return;
    };
    let label = text_box.get_attribute("aria-label").unwrap_or_default();
    if let Some(full) = full(&message, &call, &label) {
        text_box.set_text_content(Some(&full));
        button.remove();
        // The button is gone: keep the keyboard in the text it opened.
        let _ = text_box.unchecked_into::<HtmlElement>().focus();
    }
}

/// Sends the answer to the approval request `card` shows.
fn answer_approval(session: Session, card: Element, approve: bool, reason: Option<String>) {
    if let (Some(id), Some(answer)) = (card.get_attribute("data-approval"), answer_of(session, &card)) {
        session.answer_approval(answer, id, approve, reason);
    }
}

fn thumb_selector(rating: Rating) -> &'static str {
    match rating {
        Rating::Up => "[data-rating=up]",
        Rating::Down => "[data-rating=down]",
    }
}

/// Shows the vote `next` at once and asks the server; a vote made while one is being saved is sent after it (see
/// `AnswerState::begin_vote`), and if the server refuses, the vote it holds is put back, saying why. The vote's HTML
/// is made again, so the keyboard is put back on `focus_on` in the feedback `slot` (a comment box is opened for it).
fn save(session: Session, answer: RwSignal<AnswerState>, next: Option<Vote>, slot: Element, focus_on: &'static str) {
    let Some(message) = answer.with_untracked(|a| a.message_id.clone()) else { return };
    let held = answer.try_update(|a| a.begin_vote(next.clone())).flatten();
    request_animation_frame(move || {
        if focus_on == "textarea" {
            show(&slot, ".feedback-form", true);
        }
        focus(&slot, focus_on);
    });
    let Some(mut held) = held else { return };
    let chat = session.chat_id;
    spawn_local(async move {
        let mut vote = next;
        loop {
            let request = vote.clone().map(|vote| FeedbackRequest { rating: vote.rating, comment: vote.comment });
            let error = match api::set_feedback(chat, &message, request).await {
                Ok(_) => {
                    held = vote.clone();
                    None
                }
                Err(error) => Some(format!("Your feedback was not saved: {}", error.message())),
            };
            match answer.try_update(|a| a.vote_answered(held.clone(), error)).flatten() {
                Some(queued) => vote = queued,
                None => break,
            }
        }
    });
}
