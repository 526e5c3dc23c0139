"""Preference models: the contract (`types`), programmatic rules (`rules`), model judges
(`judge`), and how a `NAME[:ARG]` spec names one (`resolve`)."""
