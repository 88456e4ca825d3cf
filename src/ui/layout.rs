//! Placement helpers shared by the panes and overlays (a leaf: the panes use it, it uses none of
//! them).

use ratatui::layout::Rect;

/// A rectangle of at most `w`×`h` centred in `r`.
pub fn centered(r: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(r.width);
    let h = h.min(r.height);
    Rect {
        x: r.x + (r.width - w) / 2,
        y: r.y + (r.height - h) / 2,
        width: w,
        height: h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centred_and_clipped_to_the_area() {
        let r = Rect::new(10, 5, 40, 20);
        assert_eq!(centered(r, 20, 10), Rect::new(20, 10, 20, 10));
        assert_eq!(centered(r, 100, 100), r);
    }
}
