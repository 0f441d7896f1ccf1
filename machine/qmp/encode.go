package qmp

import (
	"github.com/govmm/govmm/machine/qmp/qjson"
)

// The functions below turn the Go types into QMP objects. Members are added
// in the QAPI schema's order (qapi/*.json of QEMU 7.2); qjson writes them in
// QEMU's hash order, so the bytes match QEMU's.

func versionValue(v Version) *qjson.Dict {
	return qjson.NewDict(
		"qemu", qjson.NewDict("major", v.Major, "minor", v.Minor, "micro", v.Micro),
		"package", v.Package)
}

func cpuValue(c CPUInfo) *qjson.Dict {
	target := c.Target
	if target == "" {
		target = "x86_64"
	}
	return qjson.NewDict(
		"cpu-index", c.Index,
		"qom-path", c.QOMPath,
		"thread-id", c.ThreadID,
		"props", qjson.NewDict("socket-id", c.SocketID, "core-id", c.CoreID, "thread-id", c.Thread),
		"target", target)
}

func chardevValue(c ChardevInfo) *qjson.Dict {
	return qjson.NewDict("label", c.Label, "filename", c.Filename, "frontend-open", c.FrontendOpen)
}

func blockValue(b BlockInfo) *qjson.Dict {
	d := qjson.NewDict("device", b.Device)
	if b.QDev != "" {
		d.Set("qdev", b.QDev)
	}
	d.Set("type", "unknown")
	d.Set("removable", b.Removable)
	d.Set("locked", b.Locked)
	if b.Inserted != nil {
		d.Set("inserted", insertedValue(b.Inserted))
	}
	if b.Removable && b.TrayOpen {
		d.Set("tray_open", true)
	}
	if b.IOStatus != "" {
		d.Set("io-status", b.IOStatus)
	}
	return d
}

func insertedValue(in *BlockDeviceInfo) *qjson.Dict {
	dz := in.DetectZeroes
	if dz == "" {
		dz = "off"
	}
	d := qjson.NewDict("file", in.File)
	if in.NodeName != "" {
		d.Set("node-name", in.NodeName)
	}
	d.Set("ro", in.ReadOnly)
	d.Set("drv", in.Driver)
	if in.BackingFile != "" {
		d.Set("backing_file", in.BackingFile)
	}
	d.Set("backing_file_depth", in.BackingFileDepth)
	d.Set("encrypted", in.Encrypted)
	d.Set("detect_zeroes", dz)
	for _, k := range []string{"bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr"} {
		d.Set(k, 0)
	}
	d.Set("image", imageValue(in.Image))
	d.Set("cache", qjson.NewDict("writeback", in.Cache.Writeback, "direct", in.Cache.Direct, "no-flush", in.Cache.NoFlush))
	d.Set("write_threshold", in.WriteThreshold)
	return d
}

func imageValue(im ImageInfo) *qjson.Dict {
	d := qjson.NewDict("filename", im.Filename, "format", im.Format, "dirty-flag", im.DirtyFlag)
	if im.ActualSize >= 0 {
		d.Set("actual-size", im.ActualSize)
	}
	d.Set("virtual-size", im.VirtualSize)
	if im.ClusterSize > 0 {
		d.Set("cluster-size", im.ClusterSize)
	}
	if q := im.Qcow2; q != nil {
		d.Set("format-specific", qjson.NewDict("type", "qcow2", "data", qjson.NewDict(
			"compat", q.Compat,
			"lazy-refcounts", q.LazyRefcounts,
			"corrupt", q.Corrupt,
			"refcount-bits", q.RefcountBits,
			"compression-type", q.CompressionType,
			"extended-l2", q.ExtendedL2)))
	}
	return d
}

func blockStatsValue(b BlockStats, top bool) *qjson.Dict {
	d := qjson.NewDict()
	if top && b.Device != "" {
		d.Set("device", b.Device)
	}
	if top && b.QDev != "" {
		d.Set("qdev", b.QDev)
	}
	if b.NodeName != "" {
		d.Set("node-name", b.NodeName)
	}
	d.Set("stats", statsValue(b.Stats))
	if b.Parent != nil {
		d.Set("parent", blockStatsValue(*b.Parent, false))
	}
	if b.FileDriver {
		d.Set("driver-specific", qjson.NewDict(
			"driver", "file", "discard-nb-ok", 0, "discard-nb-failed", 0, "discard-bytes-ok", 0))
	}
	return d
}

func statsValue(s BlockDeviceStats) *qjson.Dict {
	d := qjson.NewDict(
		"rd_bytes", s.RdBytes,
		"wr_bytes", s.WrBytes,
		"unmap_bytes", s.UnmapBytes,
		"rd_operations", s.RdOperations,
		"wr_operations", s.WrOperations,
		"flush_operations", s.FlushOperations,
		"unmap_operations", s.UnmapOperations,
		"rd_total_time_ns", s.RdTotalTimeNs,
		"wr_total_time_ns", s.WrTotalTimeNs,
		"flush_total_time_ns", s.FlushTotalTimeNs,
		"unmap_total_time_ns", s.UnmapTotalTimeNs,
		"wr_highest_offset", s.WrHighestOffset,
		"rd_merged", s.RdMerged,
		"wr_merged", s.WrMerged,
		"unmap_merged", s.UnmapMerged)
	if s.HasIdleTime {
		d.Set("idle_time_ns", s.IdleTimeNs)
	}
	d.Set("failed_rd_operations", s.FailedRdOperations)
	d.Set("failed_wr_operations", s.FailedWrOperations)
	d.Set("failed_flush_operations", s.FailedFlushOperations)
	d.Set("failed_unmap_operations", s.FailedUnmapOperations)
	d.Set("invalid_rd_operations", s.InvalidRdOperations)
	d.Set("invalid_wr_operations", s.InvalidWrOperations)
	d.Set("invalid_flush_operations", s.InvalidFlushOperations)
	d.Set("invalid_unmap_operations", s.InvalidUnmapOperations)
	d.Set("account_invalid", s.AccountInvalid)
	d.Set("account_failed", s.AccountFailed)
	d.Set("timed_stats", []qjson.Value{})
	return d
}
