//! Mouse support (k9s/bottom style): a click on a row selects it, a click on a column header
//! sorts by that column (again: reverses), the wheel moves the selection.
//!
//! The app stays pure: the UI records where it drew the table
//! ([`TableHits`](super::state::TableHits), in the view's `drawn`) and a mouse event is
//! resolved against the last frame drawn. The runtime only
//! forwards crossterm's mouse events when mouse capture is on (`--no-mouse` turns it off).

use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};

use super::state::{App, Overlay};

/// What a mouse event does to the view. Only the table answers the mouse; with an overlay
/// open (a confirmation, the help, the picker) a click does nothing, so a stray click never
/// confirms or dismisses anything.
pub fn on_mouse(app: &mut App, ev: MouseEvent, now: std::time::Instant) {
    if app.view.overlay != Overlay::None {
        return;
    }
    match ev.kind {
        MouseEventKind::ScrollDown => app.move_selection(1),
        MouseEventKind::ScrollUp => app.move_selection(-1),
        MouseEventKind::Down(MouseButton::Left) => {
            let Some(hits) = app.view.drawn.get() else {
                return;
            };
            if ev.row == hits.header_y {
                if let Some(col) = hits.column_at(ev.column) {
                    app.view.sort_by(col);
                    app.set_status(sort_status(app), now);
                }
            } else if let Some(id) = hits.row_at(ev.row) {
                app.view.selected = Some(id.clone());
                app.view.chosen = true;
            }
        }
        _ => {}
    }
}

/// `sorted by power (descending)`.
pub fn sort_status(app: &App) -> String {
    let dir = if app.view.descending {
        "descending"
    } else {
        "ascending"
    };
    format!("sorted by {} ({dir})", app.view.sort.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::fixture::mixed_fleet;
    use crate::app::state::{Column, RowId, Settings, TableHits};
    use ratatui::crossterm::event::KeyModifiers;

    fn click(kind: MouseEventKind, column: u16, row: u16) -> MouseEvent {
        MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        }
    }

    fn hits(app: &App) -> TableHits {
        TableHits {
            header_y: 3,
            body_y: 4,
            rows: app.rows().iter().map(|r| r.id()).collect(),
            cols: vec![(Column::Health, 2, 9), (Column::Alias, 12, 20)],
        }
    }

    #[test]
    fn a_click_selects_the_row_under_it_and_a_header_click_sorts() {
        let (mut app, now) = mixed_fleet(Settings::default(), std::time::Instant::now());
        app.view.drawn.set(Some(hits(&app)));
        let third = app.rows()[2].id();
        on_mouse(
            &mut app,
            click(MouseEventKind::Down(MouseButton::Left), 5, 6),
            now,
        );
        assert_eq!(app.view.selected, Some(third));
        assert!(app.view.chosen);
        // Below the last row: nothing changes.
        let before = app.view.selected.clone();
        on_mouse(
            &mut app,
            click(MouseEventKind::Down(MouseButton::Left), 5, 90),
            now,
        );
        assert_eq!(app.view.selected, before);
        // The header: sort by the column clicked, a second click reverses.
        on_mouse(
            &mut app,
            click(MouseEventKind::Down(MouseButton::Left), 14, 3),
            now,
        );
        assert_eq!((app.view.sort, app.view.descending), (Column::Alias, false));
        on_mouse(
            &mut app,
            click(MouseEventKind::Down(MouseButton::Left), 14, 3),
            now,
        );
        assert_eq!((app.view.sort, app.view.descending), (Column::Alias, true));
        assert_eq!(app.status(), Some("sorted by alias (descending)"));
    }

    #[test]
    fn the_wheel_moves_the_selection_and_overlays_ignore_the_mouse() {
        let (mut app, now) = mixed_fleet(Settings::default(), std::time::Instant::now());
        app.view.drawn.set(Some(hits(&app)));
        let rows: Vec<RowId> = app.rows().iter().map(|r| r.id()).collect();
        app.view.selected = Some(rows[0].clone());
        on_mouse(&mut app, click(MouseEventKind::ScrollDown, 0, 0), now);
        on_mouse(&mut app, click(MouseEventKind::ScrollDown, 0, 0), now);
        assert_eq!(app.view.selected.as_ref(), Some(&rows[2]));
        on_mouse(&mut app, click(MouseEventKind::ScrollUp, 0, 0), now);
        assert_eq!(app.view.selected.as_ref(), Some(&rows[1]));
        app.view.overlay = Overlay::Help;
        on_mouse(
            &mut app,
            click(MouseEventKind::Down(MouseButton::Left), 5, 4),
            now,
        );
        on_mouse(&mut app, click(MouseEventKind::ScrollDown, 0, 0), now);
        assert_eq!(app.view.selected.as_ref(), Some(&rows[1]));
        assert_eq!(app.view.sort, Column::Ip);
    }
}
