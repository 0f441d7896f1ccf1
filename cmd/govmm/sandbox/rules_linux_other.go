//go:build linux && !amd64

package sandbox

// No deny list for this architecture yet: Build refuses (auditArch 0).
const auditArch = 0

const x32ABIBit = 0

var denyList []rule
