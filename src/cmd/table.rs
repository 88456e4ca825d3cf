//! The headless commands' text tables (`status`, `discover`, `update`'s plan), laid out by
//! `comfy-table`, which measures cells in display width: a long or wide-character alias (CJK,
//! emoji) widens its own column and never shifts the others. No borders, two spaces between
//! columns, no trailing blanks — the look the commands always had, so `grep`/`awk` still work.

use comfy_table::{
    Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width, presets,
};

/// A table of `head` and `rows`; the columns in `right` are right-aligned (numbers).
pub fn render(head: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut t = plain();
    t.set_header(head.iter().map(Cell::new));
    for r in rows {
        t.add_row(r.iter().map(Cell::new));
    }
    spaced(&mut t, right);
    finish(&t)
}

/// One row laid out in fixed column widths (display cells), for tables printed a row at a
/// time as devices answer (`discover`): every row lines up with the header printed first.
/// Cells are made safe and cut to their width with `…` ([`crate::text::clip`]) first.
pub fn fixed_row(cells: &[String], widths: &[u16]) -> String {
    let mut t = plain();
    t.add_row(cells.iter().zip(widths).map(|(c, w)| {
        Cell::new(crate::text::clip(
            &crate::text::sanitize(c),
            usize::from(*w),
        ))
    }));
    spaced(&mut t, &[]);
    for (i, w) in widths.iter().enumerate() {
        if let Some(col) = t.column_mut(i) {
            // The fixed width holds the padding too.
            let pad = if i + 1 < widths.len() { 2 } else { 0 };
            col.set_constraint(ColumnConstraint::Absolute(Width::Fixed(*w + pad)));
        }
    }
    finish(&t)
}

fn plain() -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    t
}

/// Two spaces after every column but the last; `right` columns right-aligned.
fn spaced(t: &mut Table, right: &[usize]) {
    let n = t.column_count();
    for i in 0..n {
        if let Some(col) = t.column_mut(i) {
            col.set_padding((0, if i + 1 < n { 2 } else { 0 }));
            if right.contains(&i) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
}

fn finish(t: &Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::width;

    #[test]
    fn wide_characters_never_shift_a_column() {
        let rows = vec![
            vec!["127.0.0.1".into(), "台所の電気ケトル".into(), "1.5".into()],
            vec!["127.0.0.2".into(), "🔌 desk".into(), "28000.0".into()],
            vec!["127.0.0.3".into(), "plain".into(), "-".into()],
        ];
        let out = render(&["IP", "ALIAS", "W"], &rows, &[2]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        // The last column ends at the same display column on every line (right-aligned).
        let ends: Vec<usize> = lines.iter().map(|l| width(l)).collect();
        assert!(ends.iter().all(|e| *e == ends[0]), "{out}\n{ends:?}");
        // The column after the alias starts at the same display column on every line.
        let third = ["W", "1.5", "28000.0", "-"];
        let at: Vec<usize> = lines
            .iter()
            .zip(third)
            .map(|(l, v)| width(&l[..l.rfind(v).unwrap()]) + width(v))
            .collect();
        assert!(at.iter().all(|s| *s == at[0]), "{out}");
        assert!(lines[0].starts_with("IP         ALIAS"), "{out}");
    }

    #[test]
    fn fixed_rows_cut_with_an_ellipsis_and_line_up() {
        let w = [10, 6, 4];
        let a = fixed_row(&["IP".into(), "ALIAS".into(), "X".into()], &w);
        let b = fixed_row(
            &["127.0.0.1".into(), "日本語テキスト".into(), "1".into()],
            &w,
        );
        assert_eq!(a, "IP          ALIAS   X");
        assert_eq!(b, "127.0.0.1   日本…   1");
    }
}
