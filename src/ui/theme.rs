//! Styles. Meaning never rests on colour alone: flagged values also carry a glyph, the selected
//! row is reversed, and with `NO_COLOR` set only modifiers (bold, dim, reversed) remain.

use ratatui::style::{Color, Modifier, Style};

use crate::app::state::{Health, Verdict};

/// The glyph placed after a value: the verdict's glyph from the one table
/// ([`crate::text::glyph`]), or a space for a plausible value so the numbers stay aligned.
pub fn verdict_glyph(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => " ",
        other => other.glyph(),
    }
}

/// The glyph in the health column, from the one table ([`crate::text::glyph`]).
pub fn health_glyph(h: Health) -> &'static str {
    use crate::text::glyph;
    match h {
        Health::Ok => glyph::OK,
        Health::Pending => glyph::NEW,
        Health::Updating => glyph::UPDATING,
        Health::NoReading => glyph::NO_READING,
        Health::Suspect => glyph::SUSPECT,
        Health::Failing => glyph::FAILING,
        Health::Bogus => glyph::BOGUS,
        Health::Offline => glyph::OFFLINE,
        Health::Newer => glyph::NEEDS_CREDENTIALS,
        Health::NeedsCredentials => glyph::ACCOUNT_NEEDED,
        Health::AuthFailed => glyph::AUTH_FAILED,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    pub fn new(color: bool) -> Self {
        Self { color }
    }

    /// Colour unless `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
    pub fn color_from_env() -> bool {
        std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn label(&self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    pub fn header(&self) -> Style {
        self.fg(Color::Cyan)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn marked(&self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }

    pub fn verdict(&self, v: Verdict) -> Style {
        match v {
            Verdict::Ok => Style::new(),
            Verdict::Suspect => self.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Verdict::Bogus => self.fg(Color::LightRed).add_modifier(Modifier::BOLD),
        }
    }

    pub fn health(&self, h: Health) -> Style {
        match h {
            Health::Ok => self.fg(Color::Green),
            Health::Pending => self.dim(),
            Health::Updating => self.fg(Color::Blue),
            Health::NoReading => self.fg(Color::Yellow),
            Health::Suspect => self.verdict(Verdict::Suspect),
            Health::Bogus => self.verdict(Verdict::Bogus),
            Health::Failing => self.fg(Color::Yellow),
            Health::Offline => self.dim(),
            Health::Newer | Health::NeedsCredentials => {
                self.fg(Color::Blue).add_modifier(Modifier::BOLD)
            }
            Health::AuthFailed => self.fg(Color::LightRed).add_modifier(Modifier::BOLD),
        }
    }

    pub fn error(&self) -> Style {
        self.fg(Color::LightRed)
    }

    pub fn border(&self) -> Style {
        self.fg(Color::DarkGray)
    }

    /// The part of a cell the filter matched: bold and underlined (seen without colour too).
    pub fn matched(&self) -> Style {
        self.fg(Color::Yellow)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    pub fn sparkline(&self) -> Style {
        self.fg(Color::Green)
    }
}
