"""Tables of videos: the column schema, reading and writing, and the filter → score → label stages."""
