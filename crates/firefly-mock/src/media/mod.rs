//! Images and audio: OpenAI's `images/generations`, `audio/speech` and `audio/transcriptions`
//! (and Azure's deployment routes for them), the deterministic files they produce, and
//! `GET /_mock/files/{name}`, which serves those files again from their names alone (nothing
//! is stored, so a long benchmark does not grow the mock).

pub(crate) mod files;
pub(crate) mod images;
pub(crate) mod speech;
pub(crate) mod transcription;

/// Speech is 16-bit mono PCM at this rate (OpenAI's `pcm` and `wav` output).
pub(crate) const SAMPLE_RATE: u32 = 24_000;

/// Each input character is this much speech: 40 ms, 960 samples, 1920 bytes of PCM.
pub(crate) const PCM_BYTES_PER_CHAR: usize = 1_920;

/// The canonical 44-byte RIFF header's length.
pub(crate) const WAV_HEADER: usize = 44;

/// A 1×1 PNG (one opaque firefly-yellow pixel): signature, `IHDR`, `IDAT`, `IEND`, with real
/// CRCs and a stored zlib stream, so image decoders accept it.
pub(crate) fn png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    // Bit depth 8, colour type 6 (RGBA), deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    // One scanline: filter type 0, then the pixel.
    let raw = [0u8, 0xF5, 0xD0, 0x2A, 0xFF];
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    zlib.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    png_chunk(&mut png, b"IDAT", &zlib);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// The speech for `chars` input characters: 16-bit little-endian mono PCM, a quiet 500 Hz
/// sawtooth, `PCM_BYTES_PER_CHAR` bytes per character.
pub(crate) fn pcm(chars: usize) -> Vec<u8> {
    let samples = chars * PCM_BYTES_PER_CHAR / 2;
    let mut pcm = Vec::with_capacity(samples * 2);
    for n in 0..samples {
        let sample = ((n % 48) as i16 - 24) * 256;
        pcm.extend_from_slice(&sample.to_le_bytes());
    }
    pcm
}

/// [`pcm`] in a canonical WAV container.
pub(crate) fn wav(chars: usize) -> Vec<u8> {
    let pcm = pcm(chars);
    let mut wav = Vec::with_capacity(WAV_HEADER + pcm.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&((36 + pcm.len()) as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    wav.extend_from_slice(&(SAMPLE_RATE * 2).to_le_bytes()); // byte rate
    wav.extend_from_slice(&2u16.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(&pcm);
    wav
}

/// The duration in seconds of a WAV file (`data` bytes over the `fmt ` byte rate), or `None`
/// when `bytes` is not a WAV file.
pub(crate) fn wav_duration(bytes: &[u8]) -> Option<f64> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut byte_rate = None;
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        let body = pos + 8;
        match id {
            b"fmt " if body + 12 <= bytes.len() => {
                byte_rate = Some(u32::from_le_bytes(bytes[body + 8..body + 12].try_into().ok()?));
            }
            b"data" => {
                // Streamed WAVs declare a size they cannot know; trust what is there.
                let data = size.min(bytes.len() - body);
                return byte_rate.filter(|&rate| rate > 0).map(|rate| data as f64 / f64::from(rate));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        pos = body.checked_add(size)?.checked_add(size & 1)?;
    }
    None
}
