//! Chunked decoder: never panics; decoding the input in one piece and in arbitrary splits gives the
//! same data, the same end of body, and the same accept/refuse decision.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::chunked::ChunkedDecoder;

fn run(input: &[u8], splits: &[usize]) -> Result<(Vec<u8>, Option<usize>), ()> {
    let mut d = ChunkedDecoder::new(4096);
    let mut data = Vec::new();
    let mut pos = 0;
    let mut cuts: Vec<usize> = splits.iter().map(|s| s % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    for cut in cuts {
        while pos < cut {
            let piece = &input[pos..cut];
            let r = d.decode(piece, |s, e| data.extend_from_slice(&piece[s..e])).map_err(|_| ())?;
            assert!(r.consumed <= piece.len());
            pos += r.consumed;
            if r.done {
                return Ok((data, Some(pos)));
            }
            assert_eq!(r.consumed, piece.len(), "stopped early without finishing the body");
        }
    }
    Ok((data, None))
}

// Input: one byte giving the split step, then the body bytes.
fuzz_target!(|data: &[u8]| {
    let Some((&step, bytes)) = data.split_first() else { return };
    let step = usize::from(step.max(1));
    let splits: Vec<usize> = (step..bytes.len()).step_by(step).collect();
    let whole = run(bytes, &[]);
    let split = run(bytes, &splits);
    assert_eq!(whole, split);
});
