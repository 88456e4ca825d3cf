//! The key map: one table, the single source of truth for both key handling ([`lookup`]) and the
//! help screen ([`help_sections`]).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::state::Column;

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// The table (and the detail pane beside it).
    Table,
    /// Typing a filter after `/`.
    Filter,
    /// A confirmation dialog is open.
    Confirm,
    /// The help screen is open.
    Help,
    /// The firmware file picker is open.
    Picker,
    /// The recent log lines are shown.
    Log,
    /// The credentials prompt (`c`) is open.
    Account,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Context::Table => "Fleet table",
            Context::Filter => "Filter (after /)",
            Context::Confirm => "Confirmation dialog",
            Context::Help => "This help",
            Context::Picker => "Firmware file picker",
            Context::Log => "Recent log lines",
            Context::Account => "Account prompt (c)",
        }
    }
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    ToggleDetail,
    Back,
    StartFilter,
    Mark,
    MarkAllVisible,
    ClearMarks,
    FlaggedOnly,
    SortNext,
    SortPrev,
    SortReverse,
    /// Sort by this column; pressed again, reverse the order (like k9s and bottom).
    SortBy(Column),
    Expand,
    Collapse,
    ToggleRelay,
    Reboot,
    Refresh,
    Help,
    FilterAccept,
    FilterClear,
    FilterBackspace,
    Confirm,
    Cancel,
    CloseHelp,
    StartFirmware,
    ToggleProgress,
    CancelUpdate,
    PickerOpen,
    PickerParent,
    PickerChooseFolder,
    ToggleForce,
    /// Firmware plan: the downgrade's own consent (`D` asks, a second `D` allows).
    AllowDowngrade,
    ToggleRecording,
    ShowLog,
    CloseLog,
    /// Erase the selected plug's energy statistics (detail pane; asks first).
    EraseStats,
    /// Open the credentials prompt (the TP-Link account for newer-protocol plugs).
    EnterAccount,
    /// Account prompt: on from the user name to the password; on the password, use it.
    AccountNext,
    /// Account prompt: delete a character.
    AccountBackspace,
}

/// A key, as written in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

impl Key {
    /// How the key is written in help.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "space".to_owned(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Backspace => "Backspace".into(),
            KeyCode::Tab => "Tab".into(),
            other => format!("{other:?}"),
        };
        if self.ctrl {
            format!("Ctrl-{base}")
        } else {
            base
        }
    }

    fn matches(&self, ev: &KeyEvent) -> bool {
        let ev_ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        if self.ctrl != ev_ctrl {
            return false;
        }
        match (self.code, ev.code) {
            // Shifted letters arrive as upper-case chars (with or without SHIFT set).
            (KeyCode::Char(a), KeyCode::Char(b)) if self.ctrl => a.eq_ignore_ascii_case(&b),
            (a, b) => a == b,
        }
    }
}

/// One line of the key map.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub context: Context,
    pub keys: &'static [Key],
    pub action: Action,
    pub help: &'static str,
    /// Writes to a device: disabled (and marked so in help) in read-only mode.
    pub writes: bool,
}

const fn b(context: Context, keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding {
        context,
        keys,
        action,
        help,
        writes: false,
    }
}

const fn w(context: Context, keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding {
        context,
        keys,
        action,
        help,
        writes: true,
    }
}

use Context::{Confirm as C, Filter as F, Help as H, Table as T};

/// The key map.
pub const KEYMAP: &[Binding] = &[
    b(
        T,
        &[code(KeyCode::Up), k('k')],
        Action::Up,
        "select the previous row",
    ),
    b(
        T,
        &[code(KeyCode::Down), k('j')],
        Action::Down,
        "select the next row",
    ),
    b(
        T,
        &[code(KeyCode::PageUp), ctrl('u')],
        Action::PageUp,
        "one page up",
    ),
    b(
        T,
        &[code(KeyCode::PageDown), ctrl('d')],
        Action::PageDown,
        "one page down",
    ),
    b(T, &[code(KeyCode::Home), k('g')], Action::Top, "first row"),
    b(T, &[code(KeyCode::End), k('G')], Action::Bottom, "last row"),
    b(
        T,
        &[code(KeyCode::Enter)],
        Action::ToggleDetail,
        "open/close the detail pane",
    ),
    b(
        T,
        &[code(KeyCode::Right), k('l')],
        Action::Expand,
        "expand a strip to its outlets",
    ),
    b(
        T,
        &[code(KeyCode::Left), k('h')],
        Action::Collapse,
        "collapse a strip",
    ),
    b(
        T,
        &[k('/')],
        Action::StartFilter,
        "filter rows (alias, IP, model, version, MAC…)",
    ),
    b(
        T,
        &[k('f')],
        Action::FlaggedOnly,
        "show only flagged rows (suspect/bogus readings)",
    ),
    b(T, &[k('s')], Action::SortNext, "sort by the next column"),
    b(
        T,
        &[k('S')],
        Action::SortPrev,
        "sort by the previous column",
    ),
    b(T, &[k('o')], Action::SortReverse, "reverse the sort order"),
    b(
        T,
        &[k('H')],
        Action::SortBy(Column::Health),
        "sort by health (again: reverse)",
    ),
    b(
        T,
        &[k('A')],
        Action::SortBy(Column::Alias),
        "sort by alias (again: reverse)",
    ),
    b(
        T,
        &[k('I')],
        Action::SortBy(Column::Ip),
        "sort by IP (again: reverse)",
    ),
    b(
        T,
        &[k('M')],
        Action::SortBy(Column::Model),
        "sort by model (again: reverse)",
    ),
    b(
        T,
        &[k('V')],
        Action::SortBy(Column::Sw),
        "sort by software version (again: reverse)",
    ),
    b(
        T,
        &[k('P')],
        Action::SortBy(Column::Watts),
        "sort by power (again: reverse)",
    ),
    b(
        T,
        &[k('E')],
        Action::SortBy(Column::Kwh),
        "sort by energy (again: reverse)",
    ),
    b(
        T,
        &[k(' ')],
        Action::Mark,
        "mark/unmark the selected row and move down",
    ),
    b(
        T,
        &[k('a')],
        Action::MarkAllVisible,
        "mark all visible rows (again: unmark them)",
    ),
    b(T, &[k('u')], Action::ClearMarks, "clear all marks"),
    w(
        T,
        &[k('t')],
        Action::ToggleRelay,
        "toggle the relay (marked rows, else the selected one); off always asks",
    ),
    w(
        T,
        &[k('R')],
        Action::Reboot,
        "reboot (marked devices, else the selected one; asks first)",
    ),
    w(
        T,
        &[k('e')],
        Action::EraseStats,
        "erase the plug's energy history (detail pane; asks, shows what is lost)",
    ),
    b(
        T,
        &[k('r')],
        Action::Refresh,
        "refresh now (marked, else all)",
    ),
    w(
        T,
        &[k('U')],
        Action::StartFirmware,
        "update firmware of the marked plugs (else the selected one): pick an image or folder",
    ),
    b(
        T,
        &[k('p')],
        Action::ToggleProgress,
        "show/hide the firmware progress pane",
    ),
    b(
        T,
        &[k('x')],
        Action::CancelUpdate,
        "cancel the firmware batch (plugs already flashing go on)",
    ),
    b(
        T,
        &[code(KeyCode::Esc)],
        Action::Back,
        "close the detail pane / clear the filter",
    ),
    b(
        T,
        &[k('w')],
        Action::ToggleRecording,
        "start/stop recording readings to a file (--record, else the data folder)",
    ),
    b(T, &[k('L')], Action::ShowLog, "show the recent log lines"),
    b(
        T,
        &[k('c')],
        Action::EnterAccount,
        "enter the TP-Link account for newer-protocol plugs (◆/⊘), this session only",
    ),
    b(T, &[k('?')], Action::Help, "this help"),
    b(T, &[k('q'), ctrl('c')], Action::Quit, "quit"),
    b(
        F,
        &[code(KeyCode::Enter)],
        Action::FilterAccept,
        "keep the filter and return to the table",
    ),
    b(
        F,
        &[code(KeyCode::Esc)],
        Action::FilterClear,
        "clear the filter",
    ),
    b(
        F,
        &[code(KeyCode::Backspace)],
        Action::FilterBackspace,
        "delete a character",
    ),
    b(F, &[ctrl('c')], Action::Quit, "quit"),
    b(
        C,
        &[k('y')],
        Action::Confirm,
        "yes, do it (Enter does not confirm)",
    ),
    b(
        C,
        &[k('n'), code(KeyCode::Esc)],
        Action::Cancel,
        "no, cancel",
    ),
    b(
        C,
        &[k('F')],
        Action::ToggleForce,
        "firmware plan: override like --force (unknown target or content, same version)",
    ),
    b(
        C,
        &[k('D')],
        Action::AllowDowngrade,
        "firmware plan: allow a downgrade, like --allow-downgrade (D asks, D again allows)",
    ),
    b(C, &[ctrl('c')], Action::Quit, "quit"),
    b(
        Context::Picker,
        &[code(KeyCode::Down), k('j')],
        Action::Down,
        "next entry",
    ),
    b(
        Context::Picker,
        &[code(KeyCode::Up), k('k')],
        Action::Up,
        "previous entry",
    ),
    b(
        Context::Picker,
        &[code(KeyCode::Enter), code(KeyCode::Right)],
        Action::PickerOpen,
        "open a folder / choose an image",
    ),
    b(
        Context::Picker,
        &[code(KeyCode::Backspace), code(KeyCode::Left)],
        Action::PickerParent,
        "parent folder",
    ),
    b(
        Context::Picker,
        &[k('.')],
        Action::PickerChooseFolder,
        "use every image in this folder (best match per plug)",
    ),
    b(
        Context::Picker,
        &[code(KeyCode::Esc), k('q')],
        Action::Cancel,
        "cancel",
    ),
    b(Context::Picker, &[ctrl('c')], Action::Quit, "quit"),
    b(
        H,
        &[code(KeyCode::Down), k('j')],
        Action::Down,
        "scroll down",
    ),
    b(H, &[code(KeyCode::Up), k('k')], Action::Up, "scroll up"),
    b(
        H,
        &[k('?'), code(KeyCode::Esc), k('q')],
        Action::CloseHelp,
        "close the help",
    ),
    b(H, &[ctrl('c')], Action::Quit, "quit"),
    b(
        Context::Log,
        &[code(KeyCode::Up), k('k')],
        Action::Up,
        "older lines",
    ),
    b(
        Context::Log,
        &[code(KeyCode::Down), k('j')],
        Action::Down,
        "newer lines",
    ),
    b(
        Context::Log,
        &[code(KeyCode::Home), k('g')],
        Action::Top,
        "oldest line",
    ),
    b(
        Context::Log,
        &[code(KeyCode::End), k('G')],
        Action::Bottom,
        "newest line (follow)",
    ),
    b(
        Context::Log,
        &[k('L'), code(KeyCode::Esc), k('q')],
        Action::CloseLog,
        "close the log",
    ),
    b(Context::Log, &[ctrl('c')], Action::Quit, "quit"),
    b(
        Context::Account,
        &[code(KeyCode::Enter), code(KeyCode::Tab)],
        Action::AccountNext,
        "on to the password; on the password: use the account (kept in memory only)",
    ),
    b(
        Context::Account,
        &[code(KeyCode::Backspace)],
        Action::AccountBackspace,
        "delete a character",
    ),
    b(
        Context::Account,
        &[code(KeyCode::Esc)],
        Action::Cancel,
        "cancel (the account is unchanged)",
    ),
    b(Context::Account, &[ctrl('c')], Action::Quit, "quit"),
];

/// The binding for `ev` in `ctx`, if any.
pub fn lookup(ctx: Context, ev: &KeyEvent) -> Option<&'static Binding> {
    KEYMAP
        .iter()
        .filter(|b| b.context == ctx)
        .find(|b| b.keys.iter().any(|k| k.matches(ev)))
}

/// Help, generated from [`KEYMAP`]: per context, (keys, description) lines.
pub fn help_sections(read_only: bool) -> Vec<(&'static str, Vec<(String, String)>)> {
    [
        Context::Table,
        Context::Filter,
        Context::Confirm,
        Context::Picker,
        Context::Log,
        Context::Account,
        Context::Help,
    ]
    .into_iter()
    .map(|ctx| {
        let lines = KEYMAP
            .iter()
            .filter(|b| b.context == ctx)
            .map(|b| {
                let keys = b.keys.iter().map(Key::label).collect::<Vec<_>>().join(" ");
                let help = if b.writes && read_only {
                    format!("{} — disabled: read-only", b.help)
                } else {
                    b.help.to_owned()
                };
                (keys, help)
            })
            .collect();
        (ctx.title(), lines)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventKind;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new_with_kind(code, mods, KeyEventKind::Press)
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for b in &KEYMAP[i + 1..] {
                if a.context != b.context {
                    continue;
                }
                for ka in a.keys {
                    assert!(
                        !b.keys.contains(ka),
                        "{:?} bound to {:?} and {:?}",
                        ka,
                        a.action,
                        b.action
                    );
                }
            }
        }
    }

    #[test]
    fn lookups_follow_the_table() {
        let t = |c, m| lookup(Context::Table, &key(c, m)).map(|b| b.action);
        assert_eq!(
            t(KeyCode::Char('q'), KeyModifiers::NONE),
            Some(Action::Quit)
        );
        assert_eq!(
            t(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Action::Quit)
        );
        assert_eq!(
            t(KeyCode::Char('c'), KeyModifiers::NONE),
            Some(Action::EnterAccount)
        );
        // In the prompt letters are typed, never actions (only Ctrl-c quits).
        for c in ['q', 'y', 'c', '?', 'j'] {
            let e = key(KeyCode::Char(c), KeyModifiers::NONE);
            assert!(lookup(Context::Account, &e).is_none(), "{c}");
        }
        assert_eq!(
            t(KeyCode::Char('R'), KeyModifiers::SHIFT),
            Some(Action::Reboot)
        );
        assert_eq!(
            t(KeyCode::Char('r'), KeyModifiers::NONE),
            Some(Action::Refresh)
        );
        assert_eq!(
            t(KeyCode::Char(' '), KeyModifiers::NONE),
            Some(Action::Mark)
        );
        assert_eq!(t(KeyCode::Down, KeyModifiers::NONE), Some(Action::Down));
        assert_eq!(
            t(KeyCode::Enter, KeyModifiers::NONE),
            Some(Action::ToggleDetail)
        );
    }

    #[test]
    fn enter_never_confirms_a_dialog() {
        let e = key(KeyCode::Enter, KeyModifiers::NONE);
        assert!(lookup(Context::Confirm, &e).is_none());
        let y = key(KeyCode::Char('y'), KeyModifiers::NONE);
        assert_eq!(
            lookup(Context::Confirm, &y).map(|b| b.action),
            Some(Action::Confirm)
        );
    }

    #[test]
    fn every_binding_is_in_the_help_and_writes_say_read_only() {
        let help = help_sections(true);
        let n: usize = help.iter().map(|(_, l)| l.len()).sum();
        assert_eq!(n, KEYMAP.len());
        let table = &help[0].1;
        assert!(
            table
                .iter()
                .any(|(k, h)| k == "t" && h.contains("read-only"))
        );
        assert!(table.iter().any(|(k, _)| k == "↑ k"));
        assert!(
            !help_sections(false)[0]
                .1
                .iter()
                .any(|(_, h)| h.contains("read-only"))
        );
    }
}
