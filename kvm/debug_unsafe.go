package kvm

import "unsafe"

func (v *VCPU) setGuestDebug(d *guestDebug) error {
	_, err := ioctlPtr(v.fd, kvmSetGuestDebug, unsafe.Pointer(d))
	return err
}
