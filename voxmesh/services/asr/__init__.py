"""Speech recognition: engines behind one interface, a scheduler that shares one model across streams."""
