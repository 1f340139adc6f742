// wc-tree: counts the files, lines and bytes under a directory, printed as
// YAML; a command-line tool on cobra (Debian's Go packages, GOPATH mode).
package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

type summary struct {
	Root  string `yaml:"root"`
	Files int    `yaml:"files"`
	Lines int    `yaml:"lines"`
	Bytes int64  `yaml:"bytes"`
}

func count(root string) (summary, error) {
	s := summary{Root: root}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		for sc.Scan() {
			s.Lines++
			s.Bytes += int64(len(sc.Bytes())) + 1
		}
		s.Files++
		logrus.WithField("path", p).Debug("counted")
		return sc.Err()
	})
	return s, err
}

func main() {
	verbose := false
	cmd := &cobra.Command{
		Use:   "wc-tree DIR",
		Short: "Count files, lines and bytes under DIR",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if verbose {
				logrus.SetLevel(logrus.DebugLevel)
			}
			s, err := count(args[0])
			if err != nil {
				return err
			}
			out, err := yaml.Marshal(s)
			if err != nil {
				return err
			}
			fmt.Print(string(out))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every file")
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
