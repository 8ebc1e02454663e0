package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ReadSecrets reads the secret_file of every API token and TSIG key into its
// Secret, trimmed of surrounding white space. A relative secret_file is taken
// from the directory of the config file. It reports every file that cannot be
// read, is empty or (for a TSIG key) does not hold base64, and never quotes a
// secret. Call it after Parse or Load; unlike Validate it does I/O.
func (f *File) ReadSecrets() error {
	var errs errorList
	fail := func(path, format string, args ...any) {
		errs.Add(f.name, f.line(path), path, format, args...)
	}
	for i := range f.API.Tokens {
		t := &f.API.Tokens[i]
		path := indexPath("api.tokens", i) + ".secret_file"
		if s, err := f.readSecret(t.SecretFile, t.Secret, t.secretRead); err != nil {
			errs.AddCause(f.name, f.line(path), path, err.Error(), errors.Unwrap(err))
		} else if s != "" {
			t.Secret, t.secretRead = s, true
		}
	}
	for i := range f.DNS.TSIGKeys {
		k := &f.DNS.TSIGKeys[i]
		path := indexPath("dns.tsig_keys", i) + ".secret_file"
		s, err := f.readSecret(k.SecretFile, k.Secret, k.secretRead)
		switch {
		case err != nil:
			errs.AddCause(f.name, f.line(path), path, err.Error(), errors.Unwrap(err))
		case s != "" && !isBase64(s):
			fail(path, "%s does not hold a base64 key (make one with: openssl rand -base64 32)", k.SecretFile)
		case s != "":
			k.Secret, k.secretRead = s, true
		}
	}
	return errs.Err()
}

// readSecret returns the trimmed content of file, or "" when there is nothing
// to read: no file, or an inline secret beside it (which Validate reports).
func (f *File) readSecret(file, inline string, read bool) (string, error) {
	if file == "" || (inline != "" && !read) {
		return "", nil
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(filepath.Dir(f.name), file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return "", fmt.Errorf("cannot read %s: %w", file, pe.Err)
		}
		return "", fmt.Errorf("cannot read %s: %w", file, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("%s is empty", file)
	}
	return s, nil
}
