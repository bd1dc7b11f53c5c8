"""LSTM, GRU and RNN (placeholder until the recurrent converters land)."""
