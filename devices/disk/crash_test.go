package disk

import (
	"bufio"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const crashEnv = "GOVMM_DISK_CRASH_CHILD"

// TestCrashChild is the child side of TestKillDuringWrites: it writes to
// the image in a loop until killed. It does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	p := os.Getenv(crashEnv)
	if p == "" {
		t.Skip("child process of TestKillDuringWrites only")
	}
	d, err := Open(p, Options{Lock: true})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	buf := make([]byte, 300000)
	r.Read(buf)
	size := d.Size()
	for i := 0; ; i++ {
		off := r.Int63n(size)
		n := min(size-off, 1+r.Int63n(int64(len(buf))))
		switch r.Intn(8) {
		case 0:
			err = d.Discard(off, n)
		case 1:
			err = d.WriteZeroes(off, n)
		case 2:
			err = d.Flush()
		default:
			_, err = d.WriteAt(buf[:n], off)
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 50 {
			os.Stdout.WriteString("ready\n")
		}
	}
}

// Killing a writer at any point leaves an image qemu-img check calls
// clean or leaking, never corrupt.
func TestKillDuringWrites(t *testing.T) {
	needQemuImg(t)
	dir := t.TempDir()
	images := map[string]string{}
	images["ours-64k"] = filepath.Join(dir, "a.qcow2")
	if err := Create(images["ours-64k"], 32<<20, 16); err != nil {
		t.Fatal(err)
	}
	// 512-byte clusters with 64-bit refcounts: refcount blocks are
	// created and the refcount table grows while we kill.
	images["refbits64-512"] = filepath.Join(dir, "b.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", images["refbits64-512"], "8M")
	r := rand.New(rand.NewSource(1))
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	for name, p := range images {
		for i := 0; i < rounds; i++ {
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashEnv+"="+p)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(out).ReadString('\n')
			if line != "ready\n" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("%s: child did not start writing (%q)", name, line)
			}
			time.Sleep(time.Duration(r.Intn(400)) * time.Millisecond)
			cmd.Process.Kill() // SIGKILL
			cmd.Wait()
			qemuCheck(t, p, true)
		}
	}
}
