extensions = ["myst_nb", "livekit.sphinxext"]
nb_execution_mode = "off"
