//! Drawing: screens, widgets, key map and theme.
