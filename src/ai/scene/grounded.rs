//! The grounded description: one plain sentence built from what the box's
//! own models saw (objects with their labels and boxes, faces) and from the
//! frame's light, e.g. "Night. Three people on the left and a car on the
//! right.". It answers `scene_description` on every box, captioner or not,
//! and it never says more than the detectors found.
//!
//! Pure: [`sentence`] takes a [`View`] (the engine fills it from the model
//! calls) and [`light_of`] reads pixels, so every rule is unit-tested here.

use std::collections::BTreeMap;

use image::RgbImage;

/// One detected object.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The detector's label (`person`, `car`, darknet's `tvmonitor`...).
    pub label: String,
    /// `[x1, y1, x2, y2]` in frame pixels.
    pub bbox: [f32; 4],
}

/// The light of a frame, said first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Light {
    Day,
    Dusk,
    Night,
}

impl Light {
    fn word(self) -> &'static str {
        match self {
            Light::Day => "Day",
            Light::Dusk => "Dusk",
            Light::Night => "Night",
        }
    }
}

/// Everything the sentence is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub width: u32,
    pub height: u32,
    pub light: Light,
    pub objects: Vec<Seen>,
    /// Faces the face detector found (0 where it is not installed).
    pub faces: usize,
}

/// Mean luma (0..255) under which a colour frame is night.
pub const NIGHT_LUMA: f64 = 45.0;
/// Mean luma under which a colour frame is dusk.
pub const DUSK_LUMA: f64 = 80.0;
/// A pixel whose channels differ by at most this much is colourless.
const NEUTRAL_SPREAD: u8 = 6;
/// Share of colourless pixels from which a frame is greyscale: what a
/// camera in infrared (night) mode sends. Colour scenes measured on the
/// test photos stay under 0.42 (`stuff.jpg`), JPEG-coded grey frames at 1.0.
const GREYSCALE_SHARE: f64 = 0.98;
/// Pixels sampled per axis at most: the light of a frame needs no more.
const SAMPLES_PER_AXIS: u32 = 96;

/// The frame's light: night for a greyscale (infrared) frame or a dark one,
/// dusk for a dim one, else day. Reads a grid of at most 96 x 96 pixels.
pub fn light_of(img: &RgbImage) -> Light {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Light::Night;
    }
    let (sx, sy) = ((w / SAMPLES_PER_AXIS).max(1), (h / SAMPLES_PER_AXIS).max(1));
    let (mut n, mut luma, mut neutral) = (0u64, 0f64, 0u64);
    for y in (0..h).step_by(sy as usize) {
        for x in (0..w).step_by(sx as usize) {
            let [r, g, b] = img.get_pixel(x, y).0;
            luma += 0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b);
            let spread = r.max(g).max(b) - r.min(g).min(b);
            neutral += u64::from(spread <= NEUTRAL_SPREAD);
            n += 1;
        }
    }
    let mean = luma / n as f64;
    if neutral as f64 / n as f64 >= GREYSCALE_SHARE || mean < NIGHT_LUMA {
        Light::Night
    } else if mean < DUSK_LUMA {
        Light::Dusk
    } else {
        Light::Day
    }
}

/// Where in the frame, by the box centre's third.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Left,
    Centre,
    Right,
}

impl Side {
    fn words(self) -> &'static str {
        match self {
            Side::Left => "on the left",
            Side::Centre => "in the centre",
            Side::Right => "on the right",
        }
    }
}

/// How far, by the box's size against the frame's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    Near,
    Middle,
    Far,
}

/// A box at least this share of the frame's width or height is near.
const NEAR_SHARE: f32 = 0.5;
/// A box under this share of both the frame's width and height is far.
const FAR_SHARE: f32 = 0.15;

fn side_of(b: &[f32; 4], width: u32) -> Side {
    let cx = (b[0] + b[2]) / 2.0 / width.max(1) as f32;
    if cx < 1.0 / 3.0 {
        Side::Left
    } else if cx < 2.0 / 3.0 {
        Side::Centre
    } else {
        Side::Right
    }
}

fn range_of(b: &[f32; 4], width: u32, height: u32) -> Range {
    let share = ((b[2] - b[0]) / width.max(1) as f32).max((b[3] - b[1]) / height.max(1) as f32);
    if share >= NEAR_SHARE {
        Range::Near
    } else if share < FAR_SHARE {
        Range::Far
    } else {
        Range::Middle
    }
}

/// Labels named one by one at most; the rest are summed up.
const MAX_LABELS: usize = 5;

/// One plain sentence for `v`: the light, then each label with its count
/// in words and where it is (people first, then the most numerous), then
/// the faces, e.g. "Night. Three people on the left and a car on the
/// right.". "Nothing detected." when the models found nothing.
pub fn sentence(v: &View) -> String {
    let mut by_label: BTreeMap<String, Vec<(Side, Range)>> = BTreeMap::new();
    for o in &v.objects {
        by_label.entry(o.label.clone()).or_default().push((
            side_of(&o.bbox, v.width),
            range_of(&o.bbox, v.width, v.height),
        ));
    }
    let mut labels: Vec<(String, Vec<(Side, Range)>)> = by_label.into_iter().collect();
    // People first, then the most numerous; ties by name (the map's order).
    labels.sort_by_key(|(l, seen)| (l != "person", std::cmp::Reverse(seen.len())));
    let mut items: Vec<String> = labels
        .iter()
        .take(MAX_LABELS)
        .map(|(l, seen)| label_phrase(l, seen))
        .collect();
    let others: usize = labels.iter().skip(MAX_LABELS).map(|(_, s)| s.len()).sum();
    if others > 0 {
        items.push(format!(
            "{} other {}",
            count_word(others),
            if others == 1 { "object" } else { "objects" }
        ));
    }
    if v.faces > 0 {
        items.push(match v.faces {
            1 => "a visible face".to_owned(),
            n => format!("{} visible faces", count_word(n)),
        });
    }
    let body = if items.is_empty() {
        "Nothing detected".to_owned()
    } else {
        capitalise(&join(&items))
    };
    format!("{}. {body}.", v.light.word())
}

/// "three people on the left", "a car close by on the right", or for a
/// label on several sides "three people, two on the left and one in the
/// centre" (a range every box shares is said once, after the count).
fn label_phrase(label: &str, seen: &[(Side, Range)]) -> String {
    let mut sides: BTreeMap<Side, Vec<Range>> = BTreeMap::new();
    for (s, r) in seen {
        sides.entry(*s).or_default().push(*r);
    }
    let all: Vec<Range> = seen.iter().map(|(_, r)| *r).collect();
    let total = format!(
        "{}{}",
        Noun::of(label).counted(seen.len()),
        range_words(&all)
    );
    if let [(side, _)] = sides.iter().collect::<Vec<_>>()[..] {
        return format!("{total} {}", side.words());
    }
    let shared = !range_words(&all).is_empty();
    let parts: Vec<String> = sides
        .iter()
        .map(|(side, ranges)| {
            let range = if shared { "" } else { range_words(ranges) };
            format!("{}{range} {}", count_word(ranges.len()), side.words())
        })
        .collect();
    format!("{total}, {}", join(&parts))
}

/// " close by" when every box of a group is near, " in the distance" when
/// every one is far, else nothing.
fn range_words(ranges: &[Range]) -> &'static str {
    if ranges.iter().all(|r| *r == Range::Near) {
        " close by"
    } else if ranges.iter().all(|r| *r == Range::Far) {
        " in the distance"
    } else {
        ""
    }
}

/// "a", "a, b and c". A list whose items hold commas is joined with
/// semicolons, so its parts stay apart.
fn join(items: &[String]) -> String {
    if items.iter().any(|i| i.contains(',')) {
        return items.join("; ");
    }
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A count in words up to twenty, digits above.
pub fn count_word(n: usize) -> String {
    const WORDS: [&str; 21] = [
        "no",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    WORDS
        .get(n)
        .map_or_else(|| n.to_string(), |w| (*w).to_owned())
}

/// How a label is said: its singular, plural, and whether it comes in pairs.
struct Noun {
    one: String,
    many: String,
    pair: bool,
}

impl Noun {
    /// The English noun for a detector label (darknet's run-together names
    /// spelled out, irregular plurals, things that come in pairs).
    fn of(label: &str) -> Noun {
        let one = match label {
            "tvmonitor" | "tv" => "TV".to_owned(),
            "diningtable" => "dining table".to_owned(),
            "pottedplant" => "potted plant".to_owned(),
            l => l.replace('_', " "),
        };
        let pair = matches!(one.as_str(), "skis" | "scissors");
        let many = match one.as_str() {
            "person" => "people".to_owned(),
            "mouse" => "mice".to_owned(),
            "knife" => "knives".to_owned(),
            "sheep" | "broccoli" | "skis" | "scissors" => one.clone(),
            o if ["s", "x", "ch", "sh"].iter().any(|e| o.ends_with(e)) => format!("{o}es"),
            o => format!("{o}s"),
        };
        Noun { one, many, pair }
    }

    /// "a person", "an umbrella", "three people", "a pair of skis".
    fn counted(&self, n: usize) -> String {
        match (n, self.pair) {
            (1, true) => format!("a pair of {}", self.one),
            (n, true) => format!("{} pairs of {}", count_word(n), self.many),
            (1, false) => format!("{} {}", article(&self.one), self.one),
            (n, false) => format!("{} {}", count_word(n), self.many),
        }
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box of `w` x `h` centred at `cx`, `cy` (frame 900 x 600).
    fn at(label: &str, cx: f32, cy: f32, w: f32, h: f32) -> Seen {
        Seen {
            label: label.into(),
            bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
        }
    }

    /// People of a middling size (neither near nor far) at these centres.
    fn standing(cxs: &[f32]) -> Vec<Seen> {
        cxs.iter()
            .map(|cx| at("person", *cx, 300.0, 60.0, 200.0))
            .collect()
    }

    fn view(light: Light, objects: Vec<Seen>, faces: usize) -> View {
        View {
            width: 900,
            height: 600,
            light,
            objects,
            faces,
        }
    }

    #[test]
    fn the_issues_example_reads_as_written() {
        let mut seen = standing(&[100.0, 150.0, 200.0]);
        seen.push(at("car", 750.0, 400.0, 200.0, 120.0));
        let v = view(Light::Night, seen, 0);
        assert_eq!(
            sentence(&v),
            "Night. Three people on the left and a car on the right."
        );
    }

    #[test]
    fn a_label_on_several_sides_is_counted_then_placed() {
        let mut seen = standing(&[100.0, 120.0, 450.0]);
        seen.push(at("dog", 460.0, 500.0, 80.0, 60.0));
        let v = view(Light::Day, seen, 0);
        assert_eq!(
            sentence(&v),
            "Day. Three people, two on the left and one in the centre; a dog in the distance in the centre."
        );
    }

    #[test]
    fn a_range_every_box_shares_is_said_once() {
        let far = |cx: f32| at("person", cx, 300.0, 30.0, 60.0);
        let v = view(Light::Day, vec![far(100.0), far(120.0), far(800.0)], 0);
        assert_eq!(
            sentence(&v),
            "Day. Three people in the distance, two on the left and one on the right."
        );
        let near = at("person", 800.0, 300.0, 100.0, 400.0);
        let v = view(Light::Day, vec![far(100.0), near], 0);
        assert_eq!(
            sentence(&v),
            "Day. Two people, one in the distance on the left and one close by on the right."
        );
    }

    #[test]
    fn size_says_near_and_far_and_faces_are_counted() {
        let v = view(
            Light::Dusk,
            vec![
                at("person", 450.0, 300.0, 200.0, 500.0),
                at("car", 800.0, 100.0, 40.0, 30.0),
                at("car", 850.0, 120.0, 40.0, 30.0),
            ],
            2,
        );
        assert_eq!(
            sentence(&v),
            "Dusk. A person close by in the centre, two cars in the distance on the right and two visible faces."
        );
        let one_face = view(Light::Day, vec![], 1);
        assert_eq!(sentence(&one_face), "Day. A visible face.");
    }

    #[test]
    fn nothing_seen_is_said_and_names_no_one() {
        let s = sentence(&view(Light::Day, vec![], 0));
        assert_eq!(s, "Day. Nothing detected.");
        assert!(!s.contains("person") && !s.contains("people"));
    }

    #[test]
    fn nouns_plurals_articles_and_pairs() {
        let one = |l: &str| Noun::of(l).counted(1);
        let two = |l: &str| Noun::of(l).counted(2);
        assert_eq!(one("umbrella"), "an umbrella");
        assert_eq!(one("tvmonitor"), "a TV");
        assert_eq!(two("tvmonitor"), "two TVs");
        assert_eq!(two("bus"), "two buses");
        assert_eq!(two("wine glass"), "two wine glasses");
        assert_eq!(two("bench"), "two benches");
        assert_eq!(two("knife"), "two knives");
        assert_eq!(two("sheep"), "two sheep");
        assert_eq!(two("diningtable"), "two dining tables");
        assert_eq!(one("skis"), "a pair of skis");
        assert_eq!(two("scissors"), "two pairs of scissors");
        assert_eq!(Noun::of("person").counted(21), "21 people");
        assert_eq!(count_word(20), "twenty");
    }

    #[test]
    fn many_labels_are_capped_and_the_rest_summed() {
        let labels = ["cup", "bowl", "fork", "spoon", "chair", "book", "vase"];
        let objects = labels
            .iter()
            .map(|l| at(l, 450.0, 300.0, 100.0, 100.0))
            .collect();
        let s = sentence(&view(Light::Day, objects, 0));
        assert!(s.ends_with(" and two other objects."), "{s}");
        assert_eq!(s.matches(" in the centre").count(), MAX_LABELS, "{s}");
    }

    fn filled(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
    }

    #[test]
    fn light_from_luminance_and_greyscale_is_night() {
        let colour = |k: u32| {
            move |x: u32, y: u32| {
                let v = (x * 7 + y * 3) % 60;
                [k + v, k / 2 + v, k / 3 + v].map(|c| c.min(255) as u8)
            }
        };
        assert_eq!(light_of(&filled(320, 240, colour(200))), Light::Day);
        assert_eq!(light_of(&filled(320, 240, colour(70))), Light::Dusk);
        assert_eq!(light_of(&filled(320, 240, colour(10))), Light::Night);
        // Bright but colourless: a camera in infrared mode.
        let grey = filled(320, 240, |x, _| {
            let v = (100 + x % 100) as u8;
            [v, v, v.saturating_add(2)]
        });
        assert_eq!(light_of(&grey), Light::Night);
        assert_eq!(light_of(&RgbImage::new(0, 0)), Light::Night);
    }
}
