//! Streaming mel spectrogram (spec §2.3). (being written)
