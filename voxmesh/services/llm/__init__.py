"""Post-processing of final transcripts: engines behind one streaming interface."""
