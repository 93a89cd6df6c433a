"""The mixer's shared memory: its counters (``ctrl``) and the address table of its arrays.

Thread: none (constants). The audio kernel (``rt/mixer.py``, ``rt/notes.py``) and the
compiled callbacks (``rt/jack.py``, ``rt/portaudio.py``) find every array through the
address table, so a callback needs one pointer, not one argument per array.
"""

from __future__ import annotations

# ctrl: int64 counters and settings; the comment says which side writes each one
C_FRAME = 0  # absolute output frame of the next block's first frame (audio)
C_PENDING = 1  # hits waiting in the pending list for a later block (audio)
C_HITS = 2  # hits started (audio)
C_LATE = 3  # hits that arrived after their frame and started at a block's first frame (audio)
C_STOLEN = 4  # voices faded out to make room past the polyphony limit (audio)
C_OVERFLOW = 5  # hits dropped because the pending list was full (audio)
C_BUSY_NS = 6  # time spent rendering, ns (audio)
C_BLOCKS = 7  # blocks rendered (audio)
C_UNDERFLOWS = 8  # output underflows reported to a compiled callback (audio; PortAudio)
C_MAX_LATE = 9  # frames a hit may be late and still play (set once by Mixer)
C_STALE = 10  # hits dropped for being later than that, e.g. queued while the device was gone
C_NOTE_MODE = 11  # where ``place_note`` puts a note: 0 its own frame, 1 the block start (Mixer)
C_RT_NOTES = 12  # notes placed by the audio callback itself (audio)
C_REC_ON = 13  # 1: every block is also copied into the record ring (Mixer.enable_recording)
C_MAX_BLOCK_NS = 14  # the longest block so far, wall time from its start to its end (audio)
C_RNG = 15  # xorshift32 state of the round-robin choice, never 0 (seeded by Mixer; audio)
N_CTRL = 16

# the address table: an int64 array of addresses (and sizes) of the mixer's arrays
(T_CTRL,  # ctrl above
 T_HITS, T_HIT_I, T_HIT_G,  # the hit ring: its counters, then its records (rt/ring.py)
 T_PEND_I, T_PEND_G, T_N_PEND,  # the pending list (rt/hits.py), its rows
 T_VOICE_I, T_VOICE_G, T_N_VOICES, T_MAX_VOICES,  # the voices (rt/mixer.py)
 T_BUF_ADDR, T_BUF_LEN, T_DONE, T_RT_STARTED, T_N_TABLE,  # the buffer table (rt/buffers.py)
 T_FADE, T_N_FADE,  # the steal/choke fade
 T_CLOCK, T_TIMESPEC,  # the block clock (rt/clock.py) and the kernel's clock_gettime scratch
 T_NOTE_SLOT, T_VEL_LAYER, T_VEL_GAIN, T_SLOT_CHOKE,  # the note table (rt/notes.py)
 T_LAYER_ENTRY, T_LAYER_COUNT, T_SLOT_LAST,  # its round-robin variants (rt/variants.py)
 T_REC, T_REC_DATA,  # the record ring: its counters (0 until enabled), its frames
 ) = range(29)
T_SIZE = 29
