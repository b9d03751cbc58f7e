package dp

// The secure stream's draws come in groups of eight from five 64-bit words, a layout chosen
// so that the ziggurat's fast path runs eight lanes at a time (zigvec_amd64.s): the
// first four words hold the eight 32-bit values j (lane l in the low or high half of word
// l/2), the fifth the eight layer bytes (lane l in its byte l, of which the low 7 bits
// choose the layer). Lane l's draw is the ziggurat's draw for the word j | layer<<32
// (groupWord), so it is math/rand/v2's NormFloat64 of that word. The 2.8% of draws that
// miss the fast path (20% of groups) continue on the scalar slow path after the kernel
// (gaussStream.finishSlow), with their further words from a second stream
// (gaussStream.spare): the kernel marks them and goes on instead of stopping, so it runs
// branch-free through a buffer. With AVX-512 the kernel takes two groups at a time and
// looks the layers up in tables held in registers instead of gathering them: 0.28–0.30 ns a
// draw against 0.81–0.83 for AVX2 (go test ./dp -bench ZigGroups -cpu 1, AMD EPYC). A whole fill
// (keystream and slow path included, -bench AddNormals) takes 1.40–1.58 ns a draw with it
// and 2.10–2.19 with AVX2 (the AVX2 kernel with the slow path one draw after another:
// 2.35). Where 512-bit arithmetic lowers the clock (some Intel Xeons), the kernel's gain
// should be judged by the DP-SGD step (go test ./dp/dpsgd -bench StepMLP), not the fill.
// Five words for eight draws is 5 bytes a draw of keystream; AES-128-CTR makes 9.2 GB/s on
// one core here, 0.54 ns a draw.

// groupWords is the number of stream words a group of eight draws reads.
const groupWords = 5

// groupWord returns lane l's ziggurat word of the group w.
func groupWord(w *[groupWords]uint64, l int) uint64 {
	return w[l>>1]>>(32*(l&1))&0xFFFFFFFF | (w[4]>>(8*l)&0x7F)<<32
}

// zigGroupsGeneric adds std·z to dst[8g : 8g+8] for every group g of buf (groups of five
// words; dst holds eight values a group) except for the draws that miss the ziggurat's fast
// path, which it leaves as they are. It returns refused[:0] appended with g<<8 | lanes for
// each group g with such draws, bit l of lanes set for lane l, in group order.
func zigGroupsGeneric(dst []float64, buf []uint64, std float64, refused []uint32) []uint32 {
	refused = refused[:0]
	for g := range len(buf) / groupWords {
		w := (*[groupWords]uint64)(buf[groupWords*g:])
		d := dst[8*g : 8*g+8]
		lanes := uint32(0)
		for l := range d {
			x, ok := zigFast(groupWord(w, l))
			if !ok {
				lanes |= 1 << l
				continue
			}
			d[l] += float64(std * x) // the conversion keeps the compiler from fusing: as in AVX2
		}
		if lanes != 0 {
			refused = append(refused, uint32(g)<<8|lanes)
		}
	}
	return refused
}
