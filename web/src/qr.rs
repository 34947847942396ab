//! The invite link as a QR code, drawn as inline SVG for the invite page.

use qrcode::QrCode;
use qrcode::render::svg;

/// The smallest width and height of the drawing, in CSS pixels: large enough to scan from a
/// screen, small enough for a phone's.
const MIN_SIZE: u32 = 260;

/// An `<svg>` element (no XML prolog) of `link`'s QR code: dark modules black on white, with
/// the quiet zone the standard asks for around it.
pub fn svg(link: &str) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::new(link.as_bytes())?;
    let image = code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(MIN_SIZE, MIN_SIZE)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    // Inline in HTML: no prolog; an accessible name for screen readers.
    let element = match image.find("<svg") {
        Some(start) => &image[start..],
        None => image.as_str(),
    };
    Ok(element.replacen(
        "<svg ",
        r#"<svg role="img" aria-label="QR code of the invite link" "#,
        1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `width="…"` of the drawing.
    fn width(svg: &str) -> u32 {
        let rest = svg.split_once(r#" width=""#).unwrap().1;
        rest.split_once('"').unwrap().0.parse().unwrap()
    }

    #[test]
    fn draws_the_code_of_the_link() {
        for link in [
            "dcaccount:https://chat.example.org/new",
            "dclogin:abcdefghi@[203.0.113.5]?p=%21abc%23def%25ghi&v=1&ih=203.0.113.5&ip=993\
             &is=ssl&sh=203.0.113.5&sp=465&ss=ssl&ic=3&sc=3",
        ] {
            let image = svg(link).unwrap();
            assert!(image.starts_with("<svg "), "{image}");
            assert!(image.ends_with("</svg>"));
            assert!(!image.contains("<?xml"));
            assert!(image.contains(r##"fill="#000000""##) && image.contains(r##"fill="#ffffff""##));
            // As many modules as the code of this link has, plus 4 of quiet zone each side,
            // each module a whole number of pixels, and at least MIN_SIZE wide.
            let modules = QrCode::new(link.as_bytes()).unwrap().width() as u32 + 8;
            let w = width(&image);
            assert!(w >= MIN_SIZE, "{w}");
            assert_eq!(w % modules, 0, "{w} px for {modules} modules");
        }
        // A longer link needs a larger code.
        let short = QrCode::new(b"dcaccount:https://a.example/new")
            .unwrap()
            .width();
        let long = QrCode::new("x".repeat(200).as_bytes()).unwrap().width();
        assert!(long > short);
    }

    #[test]
    fn too_long_for_a_code() {
        assert!(svg(&"x".repeat(10_000)).is_err());
    }
}
