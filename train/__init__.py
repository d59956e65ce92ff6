"""i2i.train: PyTorch trainer that produces generators and writes model.pt checkpoints."""
