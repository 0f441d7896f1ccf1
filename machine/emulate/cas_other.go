//go:build !amd64

package emulate

const haveCAS128 = false

func cas128(p *[2]uint64, old0, old1, new0, new1 uint64) (cur0, cur1 uint64, swapped bool) {
	panic("cas128 without amd64")
}
