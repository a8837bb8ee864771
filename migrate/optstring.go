package migrate

import "encoding/json"

// optString is a JSON field that can be absent, null, or a string: pgroll's alter_column
// uses null to mean "drop the default" or "remove the comment".
type optString struct {
	Set   bool // the field was present
	Null  bool // it was null
	Value string
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *optString) UnmarshalJSON(data []byte) error {
	o.Set = true
	if string(data) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(data, &o.Value)
}

// MarshalJSON implements json.Marshaler.
func (o optString) MarshalJSON() ([]byte, error) {
	if !o.Set || o.Null {
		return []byte("null"), nil
	}
	return json.Marshal(o.Value)
}
