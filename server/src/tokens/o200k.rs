//! An exact `o200k_base` token counter that stays small once loaded. The vocabulary is three
//! static tables that the build writes (see `build.rs`): the tokens' bytes back to back in rank
//! order, where each ends, and a hash table from bytes to rank. They are mapped with the bridge's
//! code, so only the pages that lookups reach take memory, and the only thing built at run time
//! is the splitting regex. Splitting and merging follow tiktoken's `encode_ordinary` step for
//! step, so the counts are tiktoken's.

use regex_automata::{Input, meta::Regex};

mod slots;

use slots::{EMPTY, RANK_MASK};

static BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.bytes"));
static ENDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.ends"));
static SLOTS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.slots"));

/// tiktoken's pieces, in its order, with its `\s+(?!\S)` written as `\s+\s` and the last
/// character given back (the `regex` engines have no look-ahead). `\s+$` comes before it: the
/// look-ahead also takes whitespace that ends the text, where there is nothing to give back.
const WORDS: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"|\s*[\r\n]+",
    r"|\s+$",
);
const SPACES_BEFORE_TEXT: &str = r"\s+\s";
const SPACES: &str = r"\s+";
/// The pattern whose last character is the look-ahead.
const LOOKAHEAD: usize = 1;

/// tiktoken merges pieces this long with a heap; shorter ones with a scan, which is faster there.
const LARGE_PIECE: usize = 100;

pub struct O200k {
    split: Regex,
}

impl O200k {
    pub fn new() -> Self {
        assert_eq!(
            SLOTS.len() / 4,
            slots::table_len(ENDS.len() / 4),
            "the build's tables"
        );
        let split = Regex::new_many(&[WORDS, SPACES_BEFORE_TEXT, SPACES])
            .expect("the o200k_base pattern compiles");
        Self { split }
    }

    /// The number of tokens tiktoken's `encode_ordinary` makes of `text`.
    pub fn count(&self, text: &str) -> usize {
        let mut scratch = Vec::new();
        self.pieces(text)
            .map(|piece| self.count_piece(piece.as_bytes(), &mut scratch))
            .sum()
    }

    fn pieces<'t>(&'t self, text: &'t str) -> impl Iterator<Item = &'t str> + 't {
        let mut input = Input::new(text);
        std::iter::from_fn(move || {
            let found = self.split.search(&input)?;
            let mut end = found.end();
            if found.pattern().as_usize() == LOOKAHEAD {
                end -= text[..end].chars().next_back().map_or(0, char::len_utf8);
            }
            input.set_start(end);
            Some(&text[found.start()..end])
        })
    }

    fn rank(&self, bytes: &[u8]) -> Option<u32> {
        let hash = slots::hash(bytes);
        let tag = slots::tag(hash);
        let len = SLOTS.len() / 4;
        let mut at = slots::start(hash, len);
        loop {
            let slot = read_u32(SLOTS, at);
            if slot == EMPTY {
                return None;
            }
            if slot & !RANK_MASK == tag && token((slot & RANK_MASK) as usize) == bytes {
                return Some(slot & RANK_MASK);
            }
            at = slots::next(at, len);
        }
    }

    fn pair_rank(&self, bytes: &[u8]) -> u32 {
        self.rank(bytes).unwrap_or(u32::MAX)
    }

    fn count_piece(&self, piece: &[u8], scratch: &mut Vec<(usize, u32)>) -> usize {
        if piece.len() == 1 || self.rank(piece).is_some() {
            1
        } else if piece.len() < LARGE_PIECE {
            self.merge_by_scan(piece, scratch)
        } else {
            self.merge_by_heap(piece)
        }
    }

    /// tiktoken's `_byte_pair_merge`: repeatedly merge the adjacent pair of lowest rank, the
    /// leftmost of equals. `parts` holds where each part starts and the rank of it joined with
    /// the next.
    fn merge_by_scan(&self, piece: &[u8], parts: &mut Vec<(usize, u32)>) -> usize {
        parts.clear();
        parts.extend((0..piece.len() - 1).map(|i| (i, self.pair_rank(&piece[i..i + 2]))));
        parts.push((piece.len() - 1, u32::MAX));
        parts.push((piece.len(), u32::MAX));
        // The rank of parts[i] joined with parts[i + 1] after parts[i + 1] absorbs parts[i + 2].
        let joined = |parts: &[(usize, u32)], i: usize| {
            if i + 3 < parts.len() {
                self.pair_rank(&piece[parts[i].0..parts[i + 3].0])
            } else {
                u32::MAX
            }
        };
        while let Some(i) = lowest(&parts[..parts.len() - 1]) {
            if i > 0 {
                parts[i - 1].1 = joined(parts, i - 1);
            }
            parts[i].1 = joined(parts, i);
            parts.remove(i + 1);
        }
        parts.len() - 1
    }

    /// tiktoken's `_byte_pair_merge_large`: the same merges in the same order, the lowest pair
    /// taken from a heap, with entries made stale by earlier merges skipped.
    fn merge_by_heap(&self, piece: &[u8]) -> usize {
        use std::{cmp::Reverse, collections::BinaryHeap};

        struct Part {
            prev: usize,
            end: usize,
            next_end: usize,
            next_rank: u32,
        }
        let mut parts: Vec<Part> = (0..piece.len())
            .map(|i| Part {
                prev: i.wrapping_sub(1),
                end: i + 1,
                next_end: i + 2,
                next_rank: u32::MAX,
            })
            .collect();
        let mut heap = BinaryHeap::with_capacity(piece.len());
        for i in 0..piece.len() - 1 {
            if let Some(rank) = self.rank(&piece[i..i + 2]) {
                heap.push(Reverse((rank, i)));
                parts[i].next_rank = rank;
            }
        }
        let consider = |parts: &mut [Part], heap: &mut BinaryHeap<_>, start: usize, end| {
            parts[start].next_end = end;
            parts[start].next_rank = u32::MAX;
            if end <= piece.len()
                && let Some(rank) = self.rank(&piece[start..end])
            {
                heap.push(Reverse((rank, start)));
                parts[start].next_rank = rank;
            }
        };
        let mut merges = 0;
        while let Some(Reverse((rank, left))) = heap.pop() {
            if rank != parts[left].next_rank {
                continue;
            }
            let right = parts[left].end;
            let right_end = parts[left].next_end;
            let right_next_end = parts[right].next_end;
            parts[left].end = right_end;
            consider(&mut parts, &mut heap, left, right_next_end);
            if right_end < parts.len() {
                parts[right_end].prev = left;
            }
            if left > 0 {
                let prev = parts[left].prev;
                consider(&mut parts, &mut heap, prev, right_end);
            }
            parts[right].next_rank = u32::MAX;
            merges += 1;
        }
        piece.len() - merges
    }
}

/// Where the lowest-ranked pair is, the first of equals; none when no pair is a token.
fn lowest(parts: &[(usize, u32)]) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, &(_, rank)) in parts.iter().enumerate() {
        if rank != u32::MAX && best.is_none_or(|(_, lowest)| rank < lowest) {
            best = Some((i, rank));
        }
    }
    best.map(|(i, _)| i)
}

fn token(rank: usize) -> &'static [u8] {
    let start = if rank == 0 {
        0
    } else {
        read_u32(ENDS, rank - 1)
    };
    &BYTES[start as usize..read_u32(ENDS, rank) as usize]
}

fn read_u32(table: &[u8], index: usize) -> u32 {
    let at = index * 4;
    u32::from_le_bytes(table[at..at + 4].try_into().expect("four bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiktoken(text: &str) -> usize {
        tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(text)
            .len()
    }

    fn assert_counts_as_tiktoken(counter: &O200k, texts: impl IntoIterator<Item = String>) {
        let mut compared = 0;
        for text in texts {
            assert_eq!(counter.count(&text), tiktoken(&text), "{text:?}");
            compared += 1;
        }
        assert!(compared > 0);
    }

    const CORPUS: &[&str] = &[
        "",
        "hello world",
        "Hello, World! How's it going? I'm fine; you'll see, we've done it, they'd said, it's OK.",
        "HELLO WORLD. DON'T SHOUT'S. CamelCaseIdentifier XMLHttpRequest iPhone McDonald'S",
        "I'M HERE, YOU'RE THERE, WE'LL GO, THEY'VE GONE, SHE'D KNOW, IT'S ſ 'ſ 'Ś",
        "The quick brown fox jumps over the lazy dog.\nThe end.\n",
        "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
        "def f(a, b=2, *args, **kw):\n\tif a >= b and not kw:\n\t\treturn a // b  # floor\n\treturn None\n",
        "<div class=\"a\"><a href=\"https://example.com/a/b?c=d&e=f#g\">link</a></div>\r\n",
        "SELECT id, name FROM users WHERE age > 30 ORDER BY name DESC LIMIT 10;",
        "{\"model\":\"gpt-image-1\",\"n\":1,\"size\":\"1024x1024\",\"prompt\":\"a cat\"}",
        "   leading spaces",
        "trailing spaces   ",
        "trailing newline\n",
        "trailing newlines\n\n\n",
        "mixed   \t  \n  \r\n\t\n   whitespace   runs\t\t\tend \n ",
        "a  b   c    d     e      f\n\n\ng",
        "\n",
        " ",
        "\t",
        "     ",
        " \n \n ",
        "line one\r\nline two\r\n\r\nline four\r",
        "path/to/some/file.rs:12:34 and C:\\Users\\name\\file.txt",
        "1 12 123 1234 12345 123456 1234567 3.14159 -42 +7 1e10 0x1F 1,000,000",
        "٠١٢٣٤٥٦٧٨٩ ۱۲۳ १२३ ① ½ Ⅻ",
        "2024-05-13T12:34:56Z and 12:00 PM, $19.99, 50%, #1, @user, a+b=c",
        "日本語のテキストとカタカナ、ひらがな。東京タワーは高い。",
        "中文文本：你好，世界！这是一个测试。",
        "한국어 텍스트입니다. 안녕하세요!",
        "Русский текст, Ελληνικά, עברית, العربية, हिन्दी, ไทย",
        "naïve café résumé coöperate Ångström façade jalapeño",
        "combining: e\u{301} a\u{308} n\u{303} \u{301}alone",
        "emoji: 🎉🎉🎉 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✨ 🤖",
        "🎉",
        "<|endoftext|>",
        "before <|endoftext|> after <|endofprompt|> <|fim_prefix|>",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        "================================================================================",
        "---\n***\n___\n...\n///\n\\\\\\",
        "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'x ''",
        "it's",
        "It'S",
        "don't",
        "DON'T",
        "o'clock",
        "rock'n'roll",
        "\u{3000}ideographic\u{3000}\u{3000}space\u{a0}nbsp\u{2003}em\u{2028}sep\u{85}nel",
        "tabs\tand\tmore\t\ttabs",
        "\u{feff}bom and \u{200b}zero\u{200d}width",
        "ǅungla ǈ ǋ Titlecase ᾈ letters",
        "ʰʲ modifier ˈstress ˌsecondary",
        "A",
        "a",
        "1",
        ".",
        "é",
        "日",
    ];

    #[test]
    fn counts_the_corpus_as_tiktoken_does() {
        let counter = O200k::new();
        assert_counts_as_tiktoken(&counter, CORPUS.iter().map(|text| text.to_string()));
        // The whole corpus at once, so pieces also meet across the texts' ends.
        assert_counts_as_tiktoken(&counter, [CORPUS.concat(), CORPUS.join("\n")]);
    }

    #[test]
    fn counts_known_texts_exactly() {
        let counter = O200k::new();
        assert_eq!(counter.count("hello world"), 2);
        assert_eq!(counter.count("<|endoftext|>"), 7);
        assert_eq!(
            counter.count("A watercolor painting of a red fox in the snow."),
            11
        );
    }

    /// A small deterministic generator (xorshift), so a failure can be run again.
    struct Texts(u64);

    impl Texts {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn text(&mut self, alphabet: &[&str], len: usize) -> String {
            (0..len)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect()
        }
    }

    /// What the pattern tells apart: cases, marks, digits, apostrophes before contractions,
    /// each kind of whitespace and line break, slashes after punctuation, multi-byte letters.
    const PARTS: &[&str] = &[
        "a", "e", "s", "t", "Z", "Q", "é", "É", "ǅ", "ʰ", "日", "ア", "한", "ß", "\u{301}", "1",
        "7", "٣", "½", " ", " ", "  ", "\t", "\n", "\r", "\r\n", "\u{a0}", "\u{3000}", "'", "'s",
        "'LL", "'re", ".", ",", "!", "?", "/", "\\", "-", "_", "(", ")", "{", "\"", "🎉", "👍🏽",
        "<|", "|>",
    ];

    #[test]
    fn counts_generated_texts_as_tiktoken_does() {
        let counter = O200k::new();
        let mut texts = Texts(0x9e37_79b9_7f4a_7c15);
        let short: Vec<String> = (0..3000)
            .map(|_| {
                let len = texts.below(40);
                texts.text(PARTS, len)
            })
            .collect();
        assert_counts_as_tiktoken(&counter, short);
    }

    #[test]
    fn counts_long_pieces_as_tiktoken_does() {
        let counter = O200k::new();
        let mut texts = Texts(0x2545_f491_4f6c_dd1d);
        // Runs without spaces make pieces of more than 100 bytes, which are merged by the heap.
        let alphabets: [&[&str]; 5] = [
            &["a", "b", "c", "d", "e", "n", "r", "s", "t"],
            &["a", "a", "a", "b"],
            &["!", "?", ".", "-", "=", "*", "#", "/"],
            &["日", "本", "語", "の", "テ", "キ", "ス", "ト"],
            &["A", "B", "C", "x", "y", "z", "é", "\u{301}"],
        ];
        let mut long = Vec::new();
        for alphabet in alphabets {
            for _ in 0..20 {
                let len = 60 + texts.below(400);
                long.push(texts.text(alphabet, len));
            }
        }
        long.push("a".repeat(5000));
        long.push("ab".repeat(2000));
        long.push(" ".repeat(1000) + "x");
        long.push("\n".repeat(1000));
        long.push("9".repeat(1000));
        assert_counts_as_tiktoken(&counter, long);
    }

    #[test]
    fn both_merges_agree() {
        let counter = O200k::new();
        let mut texts = Texts(0xdead_beef_cafe_f00d);
        let mut scratch = Vec::new();
        for _ in 0..300 {
            let len = 2 + texts.below(150);
            let piece = texts.text(&["a", "b", "e", "n", "r", "s", "t", "é"], len);
            let piece = piece.as_bytes();
            assert_eq!(
                counter.merge_by_scan(piece, &mut scratch),
                counter.merge_by_heap(piece),
                "{piece:?}"
            );
        }
    }
}
